//! Nexmark q17, auction statistics report: per auction and day, how many bids in each
//! price range, and the min, max, average and sum of their prices. An updating result.
//!
//! ```sql
//! SELECT auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
//!      count(*) AS total_bids,
//!      count(*) filter (where price < 10000) AS rank1_bids,
//!      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
//!      count(*) filter (where price >= 1000000) AS rank3_bids,
//!      min(price) AS min_price, max(price) AS max_price,
//!      avg(price) AS avg_price, sum(price) AS sum_price
//! FROM bid
//! GROUP BY auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd')
//! ```
//!
//! ```text
//! bids ══hash(auction, day)══▶ process: running statistics → changelog ══▶ write_csv
//! ```
//!
//! An unbounded group aggregate: every bid updates its group's row (`+I` the first
//! time, then `-U old`, `+U new`). `avg` of a `BIGINT` is the truncated quotient.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{bids, day_of, price_rank, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction",
    "day",
    "total_bids",
    "rank1_bids",
    "rank2_bids",
    "rank3_bids",
    "min_price",
    "max_price",
    "avg_price",
    "sum_price",
];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// `yyyy-MM-dd`.
    pub day: String,
    /// Number of bids.
    pub total_bids: i64,
    /// Bids below 10,000, from 10,000 below 1,000,000, and from 1,000,000.
    pub rank_bids: [i64; 3],
    /// Lowest price.
    pub min_price: i64,
    /// Highest price.
    pub max_price: i64,
    /// Average price (truncated).
    pub avg_price: i64,
    /// Sum of the prices.
    pub sum_price: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .text(&self.day)
            .integer(self.total_bids);
        for count in self.rank_bids {
            line.integer(count);
        }
        line.integer(self.min_price)
            .integer(self.max_price)
            .integer(self.avg_price)
            .integer(self.sum_price);
    }
}

/// The running statistics of one group: its current row.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Statistics {
    row: Option<Row>,
}

fn add_bid(
    bid: Bid,
    ctx: &mut KeyedContext<'_, (i64, String), Statistics>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let (auction, day) = ctx.key().clone();
    let state = ctx.state();
    let old = state.row.clone();
    let mut row = old.clone().unwrap_or(Row {
        auction,
        day,
        total_bids: 0,
        rank_bids: [0; 3],
        min_price: bid.price,
        max_price: bid.price,
        avg_price: 0,
        sum_price: 0,
    });
    row.total_bids += 1;
    row.rank_bids[price_rank(bid.price)] += 1;
    row.min_price = row.min_price.min(bid.price);
    row.max_price = row.max_price.max(bid.price);
    row.sum_price = row.sum_price.wrapping_add(bid.price);
    row.avg_price = row.sum_price / row.total_bids;
    state.row = Some(row.clone());
    emit_update(old, Some(row), out);
}

/// Adds q17 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| (bid.auction, day_of(bid.date_time)))
        .process(add_bid)
        .name("q17_auction_statistics");
    write_changes(&changes, io, HEADER);
}
