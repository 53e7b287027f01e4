//! Nexmark q9, winning bids: per auction, its highest bid between opening and expiry
//! (the earliest of equal ones). An updating result.
//!
//! ```sql
//! SELECT id, itemName, description, initialBid, reserve, dateTime, expires, seller,
//!        category, extra, auction, bidder, price, bid_dateTime, bid_extra
//! FROM (SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime,
//!              B.extra AS bid_extra,
//!              ROW_NUMBER() OVER (PARTITION BY A.id
//!                                 ORDER BY B.price DESC, B.dateTime ASC) AS rownum
//!       FROM auction A, bid B
//!       WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires)
//! WHERE rownum <= 1
//! ```
//!
//! ```text
//! auctions ══hash(id)══════╗
//!                          ╠═▶ co-process per auction: best bid in [dateTime, expires]
//! bids ═══hash(auction)════╝   → changelog of the winning row ══▶ write_csv
//! ```
//!
//! The join and the top-1 happen in one keyed co-process (both are keyed by the auction
//! id): the auction waits in state for its bids, bids that come first wait for it. A
//! better bid replaces the winner: `-U old`, `+U new`.
//!
//! **Ties.** `ROW_NUMBER` leaves bids equal in price and time unordered (Flink keeps
//! whichever arrived first, so its result depends on timing); eddy includes *all* tied
//! rows, as issue #7 asks: every bid tied for the best `(price DESC, dateTime ASC)` is
//! a winning row (`rownum <= 1` read as `RANK() <= 1`). A bid that ties the winners
//! adds a row (`+I`); a better one retracts them all (`-U` each) and adds itself
//! (`+U`). The result does not depend on arrival order.

use std::cmp::Reverse;

use crate::connectors::nexmark::{Auction, Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change, RowKind};
use super::{auctions, bids, Io};

/// The output's columns (the public query's sink's).
pub const HEADER: &[&str] = &[
    "id",
    "itemName",
    "description",
    "initialBid",
    "reserve",
    "dateTime",
    "expires",
    "seller",
    "category",
    "extra",
    "auction",
    "bidder",
    "price",
    "bid_dateTime",
    "bid_extra",
];

/// One result row: an auction and its winning bid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The auction.
    pub auction: Auction,
    /// Its winning bid.
    pub bid: Bid,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        let (auction, bid) = (&self.auction, &self.bid);
        line.integer(auction.id)
            .text(&auction.item_name)
            .text(&auction.description)
            .integer(auction.initial_bid)
            .integer(auction.reserve)
            .timestamp(auction.date_time)
            .timestamp(auction.expires)
            .integer(auction.seller)
            .integer(auction.category)
            .text(&auction.extra)
            .integer(bid.auction)
            .integer(bid.bidder)
            .integer(bid.price);
        line.timestamp(bid.date_time).text(&bid.extra);
    }
}

/// The order of the `ROW_NUMBER`: smaller is better — price descending, then time
/// ascending. Bids equal in both are tied (all of them win).
pub fn bid_order(bid: &Bid) -> (Reverse<i64>, i64) {
    (Reverse(bid.price), bid.date_time)
}

/// What one auction id has in state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Winner {
    auction: Option<Auction>,
    early_bids: Vec<Bid>,
    /// The winning bids: all tied for the best.
    best: Vec<Bid>,
}

impl Winner {
    fn offer(&mut self, bid: Bid, out: &mut Collector<'_, Change<Row>>) {
        let Some(auction) = &self.auction else {
            self.early_bids.push(bid);
            return;
        };
        if bid.date_time < auction.date_time || bid.date_time > auction.expires {
            return;
        }
        let row = |bid: Bid| Row {
            auction: auction.clone(),
            bid,
        };
        match self
            .best
            .first()
            .map(|best| bid_order(&bid).cmp(&bid_order(best)))
        {
            Some(std::cmp::Ordering::Greater) => {} // worse than the winners
            Some(std::cmp::Ordering::Equal) => {
                self.best.push(bid.clone());
                emit_update(None, Some(row(bid)), out);
            }
            Some(std::cmp::Ordering::Less) => {
                for old in self.best.drain(..) {
                    out.collect(Change {
                        kind: RowKind::UpdateBefore,
                        row: row(old),
                    });
                }
                self.best.push(bid.clone());
                out.collect(Change {
                    kind: RowKind::UpdateAfter,
                    row: row(bid),
                });
            }
            None => {
                self.best.push(bid.clone());
                emit_update(None, Some(row(bid)), out);
            }
        }
    }
}

/// Join and top-1 per auction.
#[derive(Clone)]
struct WinningBid;

impl KeyedCoProcessFunction<i64, Auction, Bid, Change<Row>, Winner> for WinningBid {
    fn process_element1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, i64, Winner>,
        out: &mut Collector<'_, Change<Row>>,
    ) {
        let winner = ctx.state();
        if winner.auction.is_some() {
            return; // a repeated auction id: the first one counts
        }
        winner.auction = Some(auction);
        for bid in std::mem::take(&mut winner.early_bids) {
            winner.offer(bid, out);
        }
    }

    fn process_element2(
        &mut self,
        bid: Bid,
        ctx: &mut KeyedContext<'_, i64, Winner>,
        out: &mut Collector<'_, Change<Row>>,
    ) {
        ctx.state().offer(bid, out);
    }
}

/// Adds q9 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let winners = auctions(env, io)
        .connect(&bids(env, io))
        .key_by(|auction: &Auction| auction.id, |bid: &Bid| bid.auction)
        .process(WinningBid)
        .name("q9_winning_bid");
    write_changes(&winners, io, HEADER);
}
