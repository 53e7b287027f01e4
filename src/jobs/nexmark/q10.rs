//! Nexmark q10, log to file system: every bid with its day and minute, the partition
//! columns of the public SQL's partitioned file sink.
//!
//! ```sql
//! SELECT auction, bidder, price, dateTime, extra,
//!        DATE_FORMAT(dateTime, 'yyyy-MM-dd'), DATE_FORMAT(dateTime, 'HH:mm')
//! FROM bid
//! ```
//!
//! ```text
//! bids ──map──▶ write_csv
//! ```
//!
//! The public query writes into a file system table `PARTITIONED BY (dt, hm)`, one
//! folder per minute, committed a minute after the partition's time. eddy has no
//! partitioned file sink yet, so the rows go into the one result file with `dt` and `hm`
//! as columns: the same rows, not the same folder layout.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, day_of, minute_of, Io};

/// The output's columns (the sink's: the SELECT leaves the last two unnamed).
pub const HEADER: &[&str] = &[
    "auction", "bidder", "price", "dateTime", "extra", "dt", "hm",
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
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: Text,
    /// `yyyy-MM-dd` of `date_time`.
    pub dt: String,
    /// `HH:mm` of `date_time`.
    pub hm: String,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .integer(self.price)
            .timestamp(self.date_time)
            .text(&self.extra)
            .text(&self.dt)
            .text(&self.hm);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// Adds q10 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io)
        .map(|bid: Bid| Row {
            auction: bid.auction,
            ingest: bid.ingest,
            bidder: bid.bidder,
            price: bid.price,
            dt: day_of(bid.date_time),
            hm: minute_of(bid.date_time),
            date_time: bid.date_time,
            extra: bid.extra,
        })
        .name("q10_partition_columns");
    write_rows(&rows, io, HEADER);
}
