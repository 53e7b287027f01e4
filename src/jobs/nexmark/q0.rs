//! Nexmark q0, pass-through: every bid, unchanged (measures the cost of reading,
//! shipping and writing records).
//!
//! ```sql
//! SELECT auction, bidder, price, dateTime, extra FROM bid
//! ```
//!
//! ```text
//! bids ──map──▶ write_csv
//! ```

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "bidder", "price", "dateTime", "extra"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price.
    pub price: i64,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: Text,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .integer(self.price)
            .timestamp(self.date_time)
            .text(&self.extra);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// Adds q0 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io)
        .map(|bid: Bid| Row {
            auction: bid.auction,
            ingest: bid.ingest,
            bidder: bid.bidder,
            price: bid.price,
            date_time: bid.date_time,
            extra: bid.extra,
        })
        .name("q0_project");
    write_rows(&rows, io, HEADER);
}
