//! Nexmark q22, get URL directories: every bid with the first three directories of its
//! URL.
//!
//! ```sql
//! SELECT auction, bidder, price, channel,
//!     SPLIT_INDEX(url, '/', 3) as dir1,
//!     SPLIT_INDEX(url, '/', 4) as dir2,
//!     SPLIT_INDEX(url, '/', 5) as dir3
//! FROM bid
//! ```
//!
//! ```text
//! bids ──map──▶ write_csv
//! ```
//!
//! `SPLIT_INDEX(s, '/', i)` is the `i`-th (from 0) piece of `s` split at every `/`,
//! empty pieces included (`https://host/a` → `https:`, ``, `host`, `a`), or NULL if
//! there are not that many; NULL is written as an empty field, as Flink's CSV format
//! does.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction", "bidder", "price", "channel", "dir1", "dir2", "dir3",
];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price.
    pub price: i64,
    /// The channel.
    pub channel: Text,
    /// Pieces 3, 4 and 5 of the URL split at `/` (`None`: SQL's NULL).
    pub dirs: [Option<String>; 3],
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .integer(self.price)
            .text(&self.channel);
        for dir in &self.dirs {
            line.text(dir.as_deref().unwrap_or(""));
        }
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// `SPLIT_INDEX(text, '/', index)`: the `index`-th piece of `text` split at `/`
/// (empty pieces included), or `None`. An empty text has no pieces.
pub fn split_index(text: &str, index: usize) -> Option<&str> {
    if text.is_empty() {
        return None;
    }
    text.split('/').nth(index)
}

/// Adds q22 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io)
        .map(|bid: Bid| Row {
            auction: bid.auction,
            ingest: bid.ingest,
            bidder: bid.bidder,
            price: bid.price,
            dirs: [3, 4, 5].map(|index| split_index(&bid.url, index).map(str::to_owned)),
            channel: bid.channel,
        })
        .name("q22_url_directories");
    write_rows(&rows, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_empty_ones() {
        let url = "https://www.nexmark.com/a/b/item.htm?query=1";
        assert_eq!(split_index(url, 1), Some(""));
        assert_eq!(split_index(url, 3), Some("a"));
        assert_eq!(split_index(url, 5), Some("item.htm?query=1"));
        assert_eq!(split_index(url, 6), None);
        assert_eq!(split_index("", 0), None);
    }
}
