//! Files as sources and sinks: a file, a folder or a glob read once ([`FileSource`]), a
//! folder watched with inotify ([`WatchedFolderSource`]), and a file or a folder of part
//! files written ([`FileSink`]); in the formats CSV (with or without header), JSON
//! lines and raw lines ([`Format`]), as [`Record`]s.
//!
//! A record that does not parse is handled by [`BadRecordPolicy`]: the job fails with
//! its file, line and reason; or it is skipped and counted; or it goes to a
//! [`DeadLetterFile`]. Every bad record is counted ([`FileSourceMetrics`]) and the count
//! is logged when a subtask ends.
//!
//! Both sources expose their position ([`FileSourcePosition`]: files done, and the line
//! and byte where the current file continues) and can resume from one; checkpoints will
//! store it.
//!
//! * [`format`] — the formats and their names;
//! * [`record`] — the records, and how a sink encodes them in a format;
//! * [`reader`](self) — one file read record by record with positions (crate-private);
//! * [`reading`] — a queue of files read with a bad-record policy; the position;
//! * [`bad_records`] — the policy, dead letters, counters;
//! * [`listing`] — files of a folder or a glob, hidden names, which subtask reads what;
//! * [`source`] — the bounded source;
//! * [`watch`] — the watched folder (inotify);
//! * [`sink`] — the file and part-file sink;
//! * [`error`] — [`FileError`].

pub mod bad_records;
pub mod error;
pub mod format;
pub mod listing;
mod reader;
pub mod reading;
pub mod record;
pub mod sink;
pub mod source;
pub mod watch;

/// The fields of a CSV row ([`Record::Row`]), re-exported from the `csv` crate.
pub use csv::StringRecord;
/// The JSON values of [`Record::Json`], re-exported so users get the same version.
pub use serde_json;

pub use bad_records::{BadRecordPolicy, DeadLetter, DeadLetterFile, FileSourceMetrics, Position};
pub use error::FileError;
pub use format::Format;
pub use reading::{FileSourcePosition, ReadSettings};
pub use record::{Record, RecordEncoder};
pub use sink::{FileSink, FileSinkSettings, SinkTarget};
pub use source::FileSource;
pub use watch::{WatchSettings, WatchedFolderSource};
