//! # eddy-storage
//!
//! eddy's storage layer: everything the engine keeps on local disk. It depends on nothing
//! else of eddy's, and does no I/O scheduling of its own: calls are plain blocking file
//! system calls, meant for a control thread or a blocking helper thread, not a data core.
//! Time is never read from the OS: callers pass timestamps in.
//!
//! ## Tour
//!
//! * [`snapshot`] — checkpoints and savepoints. One file per (operator, subtask) plus a
//!   `_metadata` rkyv archive under `<checkpoint-root>/<job>/chk-<n>/`, written
//!   temp-file + fsync + rename with `_metadata` last; read back through memory maps with
//!   validated rkyv access and crc32c checksums; [`snapshot::latest_valid`] for recovery
//!   and [`snapshot::retain`] for retention.
//! * [`spill`] — BATCH-mode spilling. [`spill::SpillWriter`] appends length-prefixed
//!   records to a checksummed file, [`spill::SpillReader`] validates it and reads the
//!   records back through a bounded buffer, and [`spill::ExternalSorter`] sorts (key, value) records under an explicit
//!   memory budget, spilling sorted runs and merging them back in key order. Spill files
//!   are deleted when their owner is dropped; [`spill::sweep_stale`] removes a crashed
//!   run's leftovers.
//! * [`StorageError`] — the one error type, with [`StorageError::fault`] telling whether
//!   the user, the environment or eddy is to blame and [`StorageError::is_retryable`].
//!
//! ## Safety
//!
//! The only `unsafe` code is the memory map, in one private helper. Its soundness rests on
//! eddy's folders being private to eddy: files are never modified after they are
//! written (snapshots are replaced only by rename; spill files are read with `pread`,
//! not mapped). Every mapped byte is validated before it is interpreted.

mod error;
mod fsutil;
pub mod snapshot;
pub mod spill;

pub use error::{Fault, Result, StorageError};
