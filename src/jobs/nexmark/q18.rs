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
//! an earlier one that arrives late changes nothing.
//!
//! **Ties.** `ROW_NUMBER` leaves bids of equal time unordered (Flink keeps the last to
//! arrive, so its result depends on timing); eddy includes *all* tied rows, as issue
//! #7 asks: every bid at the latest time is a row (`RANK() <= 1`). A bid at the same
//! time as the kept ones adds a row (`+I`); a later one retracts them all (`-U` each)
//! and adds itself (`+U`). The result does not depend on arrival order.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change, RowKind};
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

fn keep_last(
    bid: Bid,
    ctx: &mut KeyedContext<'_, (i64, i64), Vec<Bid>>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let kept = ctx.state();
    match kept.first().map(|last| bid.date_time.cmp(&last.date_time)) {
        Some(std::cmp::Ordering::Less) => {} // an earlier bid, arrived late
        Some(std::cmp::Ordering::Equal) | None => {
            kept.push(bid.clone());
            emit_update(None, Some(Row(bid)), out);
        }
        Some(std::cmp::Ordering::Greater) => {
            for old in kept.drain(..) {
                out.collect(Change {
                    kind: RowKind::UpdateBefore,
                    row: Row(old),
                });
            }
            kept.push(bid.clone());
            out.collect(Change {
                kind: RowKind::UpdateAfter,
                row: Row(bid),
            });
        }
    }
}

/// Adds q18 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| (bid.bidder, bid.auction))
        .process(keep_last)
        .name("q18_last_bid");
    write_changes(&changes, io, HEADER);
}
