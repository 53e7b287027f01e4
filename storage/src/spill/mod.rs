//! Spill files and external sort for BATCH mode.
//!
//! In BATCH mode a keyed exchange is blocking: the producer side sorts its output by key
//! and the consumer reads it back in key order. When the data outgrows the memory budget,
//! sorted runs go to spill files and are merged back.
//!
//! * [`SpillWriter`] / [`SpillFile`] / [`SpillReader`] — append length-prefixed records to
//!   a file with a header and a checksummed trailer, then validate it and read the records
//!   back through a bounded buffer. A truncated or damaged file is an error naming it,
//!   never wrong data.
//! * [`ExternalSorter`] / [`SortedRuns`] / [`MergeIter`] — buffer (key, value) records up
//!   to an explicit byte budget ([`ExternalSorter::bytes_held`]), spill sorted runs when
//!   it is reached, and merge all runs with a binary heap. The sort is stable.
//! * [`SpillOwner`] and [`sweep_stale`] — spill files are named after the job, operator
//!   and subtask that wrote them (`eddy-spill-<job>-<operator>-<subtask>-<seq>.run`), are
//!   deleted when their owner is dropped, and `sweep_stale` removes a crashed run's.
//!
//! Spill folders must be private to eddy (see the crate's safety notes).

mod file;
mod naming;
mod sort;

pub use file::{
    SpillFile, SpillReader, SpillRecords, SpillWriter, READ_BUFFER_BYTES, RECORD_LEN_MAX_BYTES,
    SPILL_FORMAT_VERSION,
};
pub use naming::{sweep_stale, SpillOwner, SweepReport};
pub use sort::{ExternalSorter, KeyOrder, Lexicographic, MergeIter, SortedRuns, SorterConfig};
