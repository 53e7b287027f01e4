//! WordCount: counts the whitespace-separated words of a text file.
//!
//! ```text
//! read_text ─chain─▶ split ══hash(word)══▶ count ══rebalance══▶ write_csv (1 subtask)
//! ```
//!
//! In BATCH mode the output holds one row per word with its final count; in STREAMING
//! mode a row per update, the last row of each word holding its final count (per-key
//! order is kept through the exchanges).

use std::path::Path;

use crate::prelude::*;

/// Adds the WordCount pipeline reading `input` and writing `output` (CSV with the
/// header `word,count`) to `env`.
pub fn build(env: &Env, input: &Path, output: &Path) {
    env.add_source(
        "read_text",
        TextFileSource::new(input),
        Boundedness::Bounded,
    )
    .flat_map(|line: String| {
        line.split_whitespace()
            .map(|word| (word.to_owned(), 1u64))
            .collect::<Vec<_>>()
    })
    .name("split")
    .key_by(|(word, _): &(String, u64)| word.clone())
    .reduce(|(word, count), (_, more)| (word, count + more))
    .name("count")
    .sink(CsvFileSink::new(output, &["word", "count"]))
    .name("write_csv")
    .set_parallelism(1);
}
