//! Nexmark q14, calculation: the bids whose price in euros is between 1,000,000 and
//! 50,000,000 (exclusive), with the time of day they were made and the number of `c`s
//! in their `extra`.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price as price,
//!     CASE
//!         WHEN HOUR(dateTime) >= 8 AND HOUR(dateTime) <= 18 THEN 'dayTime'
//!         WHEN HOUR(dateTime) <= 6 OR HOUR(dateTime) >= 20 THEN 'nightTime'
//!         ELSE 'otherTime'
//!     END AS bidTimeType,
//!     dateTime, extra, count_char(extra, 'c') AS c_counts
//! FROM bid
//! WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000
//! ```
//!
//! ```text
//! bids ──flat_map (filter + project)──▶ write_csv
//! ```
//!
//! `0.908 * price` is the exact `DECIMAL(23, 3)` of q1 ([`Euros`]); `HOUR` is the hour
//! of the `TIMESTAMP(3)` (UTC); `count_char` is the benchmark's UDF counting one
//! character.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::q1::Euros;
use super::{bids, hour_of, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction",
    "bidder",
    "price",
    "bidTimeType",
    "dateTime",
    "extra",
    "c_counts",
];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// `0.908 * price`, exactly.
    pub price: Euros,
    /// `dayTime` (8–18 h), `nightTime` (up to 6 h and from 20 h) or `otherTime`.
    pub bid_time_type: &'static str,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: Text,
    /// How many `c`s `extra` holds.
    pub c_counts: i64,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .text(&self.price.to_string())
            .text(self.bid_time_type)
            .timestamp(self.date_time)
            .text(&self.extra)
            .integer(self.c_counts);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// The `CASE` over the hour of the day.
pub fn bid_time_type(hour: i64) -> &'static str {
    if (8..=18).contains(&hour) {
        "dayTime"
    } else if hour <= 6 || hour >= 20 {
        "nightTime"
    } else {
        "otherTime"
    }
}

/// The row of `bid`, if it passes the `WHERE`.
pub fn select(bid: Bid) -> Option<Row> {
    let price = Euros::from_dollars(bid.price);
    // 1,000,000 < 0.908 * price < 50,000,000, in thousandths
    if price.thousandths <= 1_000_000_000 || price.thousandths >= 50_000_000_000 {
        return None;
    }
    Some(Row {
        auction: bid.auction,
        ingest: bid.ingest,
        bidder: bid.bidder,
        price,
        bid_time_type: bid_time_type(hour_of(bid.date_time)),
        date_time: bid.date_time,
        c_counts: bid.extra.matches('c').count() as i64,
        extra: bid.extra,
    })
}

/// Adds q14 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io).flat_map(select).name("q14_calculate");
    write_rows(&rows, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hours_fall_into_three_types() {
        let types: Vec<&str> = (0..24).map(bid_time_type).collect();
        assert_eq!(&types[0..7], ["nightTime"; 7]);
        assert_eq!(types[7], "otherTime");
        assert_eq!(&types[8..19], ["dayTime"; 11]);
        assert_eq!(types[19], "otherTime");
        assert_eq!(&types[20..24], ["nightTime"; 4]);
    }
}
