//! WordCount: counts the whitespace-separated words of a text file.
//!
//! ```text
//! read_text ─chain─▶ split ══hash(word)══▶ count ══rebalance══▶ write_csv (1 subtask)
//! ```
//!
//! In BATCH mode the output holds one row per word with its final count; in STREAMING
//! mode a row per update, the last row of each word holding its final count (per-key
//! order is kept through the exchanges).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_connectors::files::{FileSink, FileSinkSettings, Format, Record, SinkTarget};

use crate::prelude::*;

/// Where WordCount writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One CSV file.
    File(PathBuf),
    /// A folder of CSV part files; with checkpointing on, written exactly once (hidden
    /// until the checkpoint after them completes, see `FileSink`).
    Folder(PathBuf),
}

impl Output {
    /// A path ending in `/` (or naming an existing folder) is a folder of part files.
    pub fn from_arg(path: &Path) -> Output {
        let text = path.to_string_lossy();
        if text.ends_with('/') || path.is_dir() {
            Output::Folder(path.to_path_buf())
        } else {
            Output::File(path.to_path_buf())
        }
    }
}

/// Adds the WordCount pipeline reading `input` and writing `output` (CSV with the
/// header `word,count`) to `env`.
pub fn build(env: &Env, input: &Path, output: &Output) {
    let counts = env
        .add_source(
            "read_text",
            TextFileSource::new(input),
            Boundedness::Bounded,
        )
        .uid("read_text")
        .flat_map(|line: String| {
            line.split_whitespace()
                .map(|word| (word.to_owned(), 1u64))
                .collect::<Vec<_>>()
        })
        .name("split")
        .key_by(|(word, _): &(String, u64)| word.clone())
        .reduce(|(word, count), (_, more)| (word, count + more))
        .name("count")
        .uid("count");
    match output {
        Output::File(path) => counts
            .sink(CsvFileSink::new(path, &["word", "count"]))
            .name("write_csv")
            .uid("write_csv")
            .set_parallelism(1),
        Output::Folder(dir) => {
            let header = Arc::new(csv::StringRecord::from(vec!["word", "count"]));
            counts
                .map(move |(word, count)| Record::Row {
                    fields: csv::StringRecord::from(vec![word, count.to_string()]),
                    header: Some(Arc::clone(&header)),
                })
                .name("to_row")
                .sink(FileSink::new(FileSinkSettings {
                    target: SinkTarget::Folder(dir.clone()),
                    format: Format::Csv { header: true },
                    part_bytes: 64 << 20,
                    exactly_once: env.config().checkpoint.mode.enabled(),
                }))
                .name("write_parts")
                .uid("write_parts")
                .set_parallelism(1)
        }
    };
}
