//! Nexmark q2, selection: the bids on a few auctions (ids that are multiples of 123).
//!
//! ```sql
//! SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0
//! ```
//!
//! ```text
//! bids ──filter──map──▶ write_csv
//! ```

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "price"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id (a multiple of 123).
    pub auction: i64,
    /// Price.
    pub price: i64,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction).integer(self.price);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// Adds q2 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io)
        // SQL's MOD takes the dividend's sign, as Rust's `%`
        .filter(|bid: &Bid| bid.auction % 123 == 0)
        .name("q2_select")
        .map(|bid: Bid| Row {
            auction: bid.auction,
            ingest: bid.ingest,
            price: bid.price,
        })
        .name("q2_project");
    write_rows(&rows, io, HEADER);
}
