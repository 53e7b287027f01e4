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
//! **Ties.** `ROW_NUMBER` leaves bids of equal price unordered (Flink numbers them in
//! arrival order, so its result depends on timing); eddy includes *all* tied rows, as
//! issue #7 asks, and gives tied bids the same number: a bid's `rank_number` is 1 + the
//! number of the auction's bids with a higher price (`RANK()`), and every bid whose
//! rank is at most 10 is a row — more than 10 rows when bids tie at the 10th place.
//! Without ties this is exactly `ROW_NUMBER`'s result.
//!
//! Each auction keeps the bids ranked at most 10 (the input is append-only, so a bid
//! that drops out never comes back). A new bid enters with `+I` at its rank; every
//! kept bid with a lower price moves down one rank (`-U` at the old rank, `+U` at the
//! new), or out (`-D`) if that rank is past 10. The result does not depend on arrival
//! order.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{write_changes, Change, RowKind};
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

fn update_top(
    bid: Bid,
    ctx: &mut KeyedContext<'_, i64, Vec<Bid>>,
    out: &mut Collector<'_, Change<Row>>,
) {
    // `top` is ordered by price, descending; equal prices keep their arrival order
    let top = ctx.state();
    let price = bid.price;
    let rank = top.partition_point(|kept| kept.price > price) + 1;
    if rank > TOP_N {
        return;
    }
    let at = top.partition_point(|kept| kept.price >= price);
    top.insert(at, bid.clone());
    let row = |bid: &Bid, rank: usize| Row {
        bid: bid.clone(),
        rank_number: rank as i64,
    };
    out.collect(Change::insert(row(&bid, rank)));
    // The bids after `at` have lower prices: each moves down one rank.
    let mut group_start = at + 1;
    let mut keep = top.len();
    for index in at + 1..top.len() {
        if index > at + 1 && top[index].price != top[index - 1].price {
            group_start = index;
        }
        let new_rank = group_start + 1;
        let moved = &top[index];
        if new_rank > TOP_N {
            out.collect(Change {
                kind: RowKind::Delete,
                row: row(moved, new_rank - 1),
            });
            keep = keep.min(index);
        } else {
            out.collect(Change {
                kind: RowKind::UpdateBefore,
                row: row(moved, new_rank - 1),
            });
            out.collect(Change {
                kind: RowKind::UpdateAfter,
                row: row(moved, new_rank),
            });
        }
    }
    top.truncate(keep);
}

/// Adds q19 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| bid.auction)
        .process(update_top)
        .name("q19_top_10");
    write_changes(&changes, io, HEADER);
}
