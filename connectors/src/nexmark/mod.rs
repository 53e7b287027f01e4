//! The Nexmark benchmark's data model and its CSV files.
//!
//! Nexmark (the benchmark of nexmark/nexmark and Apache Beam) models an online auction:
//! people register ([`Person`]), open auctions ([`Auction`]) and bid on them ([`Bid`]).
//! The files are the ones `gen_nexmark.py` of the Flink peer harness (and, later,
//! `eddy nexmark generate`) writes: `person.csv`, `auction.csv`, `bid.csv`, each with a
//! header line and timestamps as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
//!
//! * [`model`] — [`Person`], [`Auction`], [`Bid`]; the [`NexmarkTable`] trait that maps a
//!   CSV row to one of them.
//! * [`time`] — timestamps `YYYY-MM-DD HH:MM:SS.mmm` (UTC) to and from epoch milliseconds.
//! * [`source`] — [`NexmarkCsvSource`]: one of the three files as a bounded source.
//! * [`canonical`] — [`CanonicalCsvSink`]: result rows as the Flink peer harness writes
//!   its reference files (header, rows sorted as text), so outputs compare byte for byte.
//! * [`generator`] — the deterministic generator ([`NexmarkModel`], byte-identical to
//!   `gen_nexmark.py`) and [`NexmarkGenerator`], one table of it as a parallel,
//!   optionally rate-limited source; [`py_random`] is CPython's Mersenne Twister it draws
//!   from.
//! * `price` — the generator's prices (`10^(6u)`) without calling `pow` for each.
//! * `position` — a generator subtask's checkpoint position and how a restore
//!   shares the old positions out (also with another parallelism).
//! * [`files`] — [`write_files`]: generated events as the three CSV files.
//! * [`text`] — [`Text`]: a bid's string fields, borrowed from the generator's tables
//!   (no allocation per generated bid) or owned.

pub mod canonical;
pub mod files;
pub mod generator;
pub mod model;
mod position;
mod price;
pub mod py_random;
pub mod source;
pub mod text;
pub mod time;

pub use canonical::{CanonicalCsvSink, CsvLine, CsvRow};
pub use files::{write_files, FileCounts};
pub use generator::{
    Event, EventGenerator, EventKind, GeneratedTable, GeneratorConfig, NexmarkGenerator,
    NexmarkModel, DEFAULT_EVENT_RATE,
};
pub use model::{Auction, Bid, IngestTime, NexmarkTable, Person};
pub use source::NexmarkCsvSource;
pub use source::SourceProbe;
pub use text::Text;
pub use time::{format_timestamp_ms, parse_timestamp_ms};
