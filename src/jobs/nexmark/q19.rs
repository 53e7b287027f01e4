//! Nexmark q19, auction top-10 price: per auction, its ten highest bids with their rank.
//! An updating result (a top-N).
//!
//! ```sql
//! SELECT * FROM
//! (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
//!  FROM bid)
//! WHERE rank_number <= 10
//! ```
//!
//! ```text
//! bids ══hash(auction)══▶ process: the top 10 → changelog per rank ══▶ write_csv
//! ```
//!
//! Each auction keeps its ten best bids (the input is append-only, so a bid that drops
//! out never comes back). A new bid that enters shifts the ranks below it: for every
//! rank whose row changed, `-U old` and `+U new` (or `+I` for a rank filled the first
//! time), as Flink's top-N with a row number emits. Equal prices are ranked by time,
//! then by the other columns, so the result is deterministic (Flink ranks them in
//! arrival order).

use std::cmp::Reverse;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
    "dateTime",
    "extra",
    "rank_number",
];

/// How many bids per auction.
pub const TOP_N: usize = 10;

/// One result row: a bid and its rank (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The bid.
    pub bid: Bid,
    /// Its rank among the auction's bids.
    pub rank_number: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        let bid = &self.bid;
        line.integer(bid.auction)
            .integer(bid.bidder)
            .integer(bid.price)
            .text(&bid.channel)
            .text(&bid.url)
            .timestamp(bid.date_time)
            .text(&bid.extra)
            .integer(self.rank_number);
    }
}

/// The ranking order: smaller is better — price descending, then time, then the
/// other columns.
pub fn rank_order(bid: &Bid) -> impl Ord + '_ {
    (
        Reverse(bid.price),
        bid.date_time,
        bid.bidder,
        &bid.channel,
        &bid.url,
        &bid.extra,
    )
}

fn update_top(
    bid: Bid,
    ctx: &mut KeyedContext<'_, i64, Vec<Bid>>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let top = ctx.state();
    let position = top.partition_point(|kept| rank_order(kept) <= rank_order(&bid));
    if position >= TOP_N {
        return;
    }
    top.insert(position, bid);
    let dropped = if top.len() > TOP_N { top.pop() } else { None };
    // Ranks `position..` changed: the new bid took `position`, the others moved down one.
    for rank in position..top.len() {
        let old = if rank == top.len() - 1 && dropped.is_none() {
            None // a rank filled for the first time
        } else if rank + 1 < top.len() {
            Some(top[rank + 1].clone())
        } else {
            dropped.clone()
        };
        let row = |bid: Bid| Row {
            bid,
            rank_number: rank as i64 + 1,
        };
        emit_update(old.map(row), Some(row(top[rank].clone())), out);
    }
}

/// Adds q19 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| bid.auction)
        .process(update_top)
        .name("q19_top_10");
    write_changes(&changes, io, HEADER);
}
