//! Nexmark q18, find last bid: per bidder and auction, the bidder's latest bid on it.
//! An updating result (a deduplication keeping the last row).
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, dateTime, extra
//! FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction
//!                                    ORDER BY dateTime DESC) AS rank_number
//!       FROM bid)
//! WHERE rank_number <= 1
//! ```
//!
//! ```text
//! bids ══hash(bidder, auction)══▶ process: keep the latest → changelog ══▶ write_csv
//! ```
//!
//! A later bid (by event time, not arrival) replaces the kept one: `-U old`, `+U new`;
//! an earlier one that arrives late changes nothing. Bids with equal times are ordered
//! by their other columns, so the result is deterministic (Flink keeps the last to
//! arrive).

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction", "bidder", "price", "channel", "url", "dateTime", "extra",
];

/// One result row: a bid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Bid);

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        let bid = &self.0;
        line.integer(bid.auction)
            .integer(bid.bidder)
            .integer(bid.price)
            .text(&bid.channel)
            .text(&bid.url)
            .timestamp(bid.date_time)
            .text(&bid.extra);
    }
}

/// The order that decides which bid is the last: time, then the other columns.
pub fn recency(bid: &Bid) -> impl Ord + '_ {
    (bid.date_time, bid.price, &bid.channel, &bid.url, &bid.extra)
}

fn keep_last(
    bid: Bid,
    ctx: &mut KeyedContext<'_, (i64, i64), Option<Bid>>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let kept = ctx.state();
    if let Some(last) = kept.as_ref() {
        if recency(&bid) <= recency(last) {
            return;
        }
    }
    let old = kept.replace(bid.clone());
    emit_update(old.map(Row), Some(Row(bid)), out);
}

/// Adds q18 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| (bid.bidder, bid.auction))
        .process(keep_last)
        .name("q18_last_bid");
    write_changes(&changes, io, HEADER);
}
