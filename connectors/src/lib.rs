//! eddy's connectors: sources and sinks that implement the engine's public
//! [`Source`](eddy_engine::prelude::Source) and [`Sink`](eddy_engine::prelude::Sink)
//! traits, and nothing of the runtime's internals.
//!
//! * [`text`] — a text file read line by line, split over the source subtasks by byte
//!   ranges (Flink's `TextLineInputFormat`).
//! * [`csv_sink`] — rows written to one CSV file with a header line.
//! * [`files`] — files, folders and globs read once, folders watched with inotify,
//!   part-file sinks; CSV, JSON lines and raw lines; bad records by policy.
//! * [`kafka`] — Kafka topics read by a parallel source (positions, pause/resume
//!   backpressure) and written by a sink with delivery none, at-least-once or
//!   exactly-once (transactions with crash recovery).
//! * [`nexmark`] — the Nexmark model (Person, Auction, Bid), its CSV files as bounded
//!   sources, and the canonical CSV sink of reference runs.

#![warn(missing_docs)]

pub mod csv_sink;
pub mod files;
pub mod kafka;
pub mod nexmark;
pub mod text;

pub use csv_sink::CsvFileSink;
pub use text::TextFileSource;
