//! Nexmark q13, bounded side input join: every bid enriched with the row of a small,
//! bounded table whose key is the bid's auction id modulo 10,000.
//!
//! ```sql
//! CREATE TABLE side_input (key BIGINT, `value` VARCHAR)  -- side_input.txt
//! SELECT B.auction, B.bidder, B.price, B.dateTime, S.`value`
//! FROM (SELECT *, PROCTIME() as p_time FROM bid) B
//! JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
//! ON mod(B.auction, 10000) = S.key
//! ```
//!
//! ```text
//! bids ──flat_map: look up auction % 10000 in the side input (shared, read-only)──▶ write_csv
//! ```
//!
//! The side input is the nexmark repository's `side_input.txt`, which its
//! `SideInputGenerator --num 10000` writes: one row `i,i` for each `i` in
//! `0..10000` (the key and its decimal text). [`SideInput::generate`] builds the same
//! table in memory; every subtask shares it (an `Arc`), as a lookup join reads a
//! dimension table. The join is an inner join: a bid whose key has no row (a negative
//! auction id: SQL's `MOD` keeps the dividend's sign) is dropped. As the table never
//! changes, `FOR SYSTEM_TIME AS OF` the processing time is simply the table.

use std::sync::Arc;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "bidder", "price", "dateTime", "value"];

/// Rows of the side input (`SideInputGenerator --num 10000`).
pub const SIDE_INPUT_ROWS: i64 = 10_000;

/// The bounded side input: `value` of each `key` in `0..rows`.
#[derive(Debug, Clone)]
pub struct SideInput {
    values: Vec<Arc<str>>,
}

impl SideInput {
    /// The nexmark repository's side input of `rows` rows: key `i`, value `"i"`.
    pub fn generate(rows: i64) -> Self {
        SideInput {
            values: (0..rows.max(0))
                .map(|key| Arc::from(key.to_string()))
                .collect(),
        }
    }

    /// The value of `key`, if the table has that key.
    pub fn get(&self, key: i64) -> Option<&Arc<str>> {
        usize::try_from(key)
            .ok()
            .and_then(|key| self.values.get(key))
    }

    /// Rows in the table.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

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
    /// The side input's value (shared with the table: no copy per row).
    pub value: Arc<str>,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .integer(self.price)
            .timestamp(self.date_time)
            .text(&self.value);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// The bid joined with its side-input row, if there is one.
pub fn join(side_input: &SideInput, bid: &Bid) -> Option<Row> {
    let value = side_input.get(bid.auction % SIDE_INPUT_ROWS)?;
    Some(Row {
        auction: bid.auction,
        bidder: bid.bidder,
        price: bid.price,
        date_time: bid.date_time,
        value: Arc::clone(value),
        ingest: bid.ingest,
    })
}

/// Adds q13 reading `io.input` and writing `io.output` (none: a blackhole) to `env`.
pub fn build(env: &Env, io: &Io) {
    let side_input = Arc::new(SideInput::generate(SIDE_INPUT_ROWS));
    let rows = bids(env, io)
        .flat_map(move |bid: Bid| join(&side_input, &bid))
        .name("q13_side_input_join");
    write_rows(&rows, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_input_is_key_and_its_text() {
        let side_input = SideInput::generate(SIDE_INPUT_ROWS);
        assert_eq!(side_input.len(), 10_000);
        assert_eq!(side_input.get(0).map(|v| &**v), Some("0"));
        assert_eq!(side_input.get(9_999).map(|v| &**v), Some("9999"));
        assert_eq!(side_input.get(10_000), None);
        assert_eq!(side_input.get(-1), None);
    }
}
