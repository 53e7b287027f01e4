//! eddy: a single-node, thread-per-core stream processing engine in the spirit of
//! Apache Flink.
//!
//! This facade is what embedding applications import:
//!
//! ```
//! use eddy::prelude::*;
//!
//! let env = Env::new(JobConfig::default());
//! let doubled = env.from_iter(1..=3u64).map(|x| x * 2).collect_vec();
//! env.execute().unwrap();
//! let mut values = doubled.take();
//! values.sort();
//! assert_eq!(values, vec![2, 4, 6]);
//! ```
//!
//! * [`prelude`] — the DataStream API, settings, handles and connectors.
//! * [`jobs`] — the built-in jobs the `eddy` binary runs (`eddy run <job>`).
//! * [`cli`] — their command-line arguments, shared by `eddy run` and the daemon.
//! * [`daemon`] — `eddy serve`: the job manager, its REST API, web UI and client;
//!   [`daemon::serve`] runs it with jobs an embedding application registers.
//! * [`engine`], [`connectors`], [`storage`] — the layers underneath.

#![warn(missing_docs)]

pub use eddy_connectors as connectors;
pub use eddy_engine as engine;
pub use eddy_storage as storage;

pub mod cli;
pub mod daemon;
pub mod jobs;

/// The DataStream API, settings, handles and the built-in connectors, in one import.
pub mod prelude {
    pub use eddy_connectors::{CsvFileSink, TextFileSource};
    pub use eddy_engine::prelude::*;
}
