//! What travels through a ring: data buffers and in-band control (watermarks,
//! end of input). Checkpoint barriers join this enum with the checkpoint issue.

/// Event time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// One element of a ring.
#[derive(Debug)]
pub enum Message<T> {
    /// A buffer of records (at most `buffer.size`), in order.
    Data(Vec<T>),
    /// No record with a smaller event time will follow on this link.
    Watermark(Timestamp),
    /// The producer subtask has ended; nothing follows.
    EndOfInput,
}
