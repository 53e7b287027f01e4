//! Nexmark q6, average selling price by seller: per seller, the average final price of
//! their last 10 closed auctions. An updating result.
//!
//! ```sql
//! -- nexmark/nexmark's q6.sql; Flink itself cannot run it ("the OVER WINDOW operator
//! -- doesn't support to consume retractions")
//! SELECT Q.seller, AVG(Q.price) OVER
//!     (PARTITION BY Q.seller ORDER BY Q.dateTime ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
//! FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
//!       FROM (SELECT A.id, A.seller, B.price, B.dateTime FROM auction AS A, bid AS B
//!             WHERE A.id = B.auction and B.dateTime between A.dateTime and A.expires)
//!       WHERE rownum <= 1) AS Q
//! ```
//!
//! ```text
//! auctions ══hash(id)══════╗
//!                          ╠═▶ co-process per auction: max bid in [dateTime, expires];
//! bids ═══hash(auction)════╝   at watermark = expires emit (seller, expires, id, final)
//!     ══hash(seller)══▶ process per seller: the 10 latest closed auctions
//!                       → changelog of (seller, avg_price) ══▶ write_csv
//! ```
//!
//! There is no Flink result to match, so eddy follows the query's stated intent and
//! Apache Beam's Nexmark Query 6 (whose "winning bids" core is q9's): an auction
//! *closes* when the event-time watermark reaches its `expires`; its final price is its
//! highest bid in `[dateTime, expires]` (q9's winner; an auction without such a bid
//! does not count). Per seller the result is the average (a `BIGINT`, truncated as
//! SQL's `AVG` of a `BIGINT`) of the final prices of the seller's **10** latest closed
//! auctions, latest by `(expires, id)` — the description's "last 10", where the SQL's
//! frame `10 PRECEDING AND CURRENT ROW` would hold 11 rows. Each closed auction updates
//! its seller's row (`+I`, or `-U`/`+U`); the final result does not depend on the
//! order in which closed auctions of one seller reach the second stage.
//!
//! State: an open auction keeps its seller, bounds and best price; a bid that comes
//! before its auction waits (price and time only) until the watermark passes its time —
//! after that no auction it could join can arrive on time — and a bid for an auction
//! that already closed is dropped. A seller keeps at most 10 closed auctions.

use crate::connectors::nexmark::{Auction, Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{auctions, bids, Io};

/// The output's columns (the public query's sink's).
pub const HEADER: &[&str] = &["seller", "avg_price"];

/// How many closed auctions of a seller the average covers.
pub const LAST_AUCTIONS: usize = 10;

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The seller's person id.
    pub seller: i64,
    /// The average final price of the seller's last 10 closed auctions (truncated).
    pub avg_price: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.seller).integer(self.avg_price);
    }
}

/// An auction that closed with a winning bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The seller.
    pub seller: i64,
    /// When it closed (its `expires`), ms since the epoch.
    pub expires: i64,
    /// The auction's id.
    pub auction: i64,
    /// Its final price: the highest bid in `[dateTime, expires]`.
    pub price: i64,
}

/// The part of an auction the first stage keeps.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Open {
    seller: i64,
    date_time: i64,
    expires: i64,
}

/// What one auction id has in state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Closing {
    auction: Option<Open>,
    /// Bids that came before the auction: (time, price).
    early_bids: Vec<(i64, i64)>,
    best: Option<i64>,
}

impl Closing {
    fn offer(&mut self, time: i64, price: i64) {
        if let Some(open) = self.auction {
            if open.date_time <= time && time <= open.expires {
                self.best = Some(self.best.map_or(price, |best| best.max(price)));
            }
        }
    }
}

/// Join and max per auction, emitted when the auction closes.
#[derive(Clone)]
struct ClosingPrice;

impl KeyedCoProcessFunction<i64, Auction, Bid, Closed, Closing> for ClosingPrice {
    fn process_element1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, i64, Closing>,
        _out: &mut Collector<'_, Closed>,
    ) {
        let state = ctx.state();
        if state.auction.is_some() {
            return; // a repeated auction id: the first one counts
        }
        state.auction = Some(Open {
            seller: auction.seller,
            date_time: auction.date_time,
            expires: auction.expires,
        });
        for (time, price) in std::mem::take(&mut state.early_bids) {
            state.offer(time, price);
        }
        ctx.register_event_time_timer(auction.expires);
    }

    fn process_element2(
        &mut self,
        bid: Bid,
        ctx: &mut KeyedContext<'_, i64, Closing>,
        _out: &mut Collector<'_, Closed>,
    ) {
        let watermark = ctx.current_watermark();
        let state = ctx.state();
        if state.auction.is_some() {
            state.offer(bid.date_time, bid.price);
        } else if bid.date_time > watermark {
            state.early_bids.push((bid.date_time, bid.price));
            ctx.register_event_time_timer(bid.date_time);
        } else if state.early_bids.is_empty() {
            // no auction it could join can come on time (or its auction has closed)
            ctx.clear_state();
        }
    }

    fn on_timer(
        &mut self,
        time: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, i64, Closing>,
        out: &mut Collector<'_, Closed>,
    ) {
        let auction_id = *ctx.key();
        let state = ctx.state();
        match state.auction {
            Some(open) if time >= open.expires => {
                if let Some(price) = state.best {
                    out.collect(Closed {
                        seller: open.seller,
                        expires: open.expires,
                        auction: auction_id,
                        price,
                    });
                }
                ctx.clear_state();
            }
            Some(_) => {} // an early bid's timer: its auction came
            None => {
                state.early_bids.retain(|&(bid_time, _)| bid_time > time);
                if state.early_bids.is_empty() {
                    ctx.clear_state();
                }
            }
        }
    }
}

/// A seller's latest closed auctions, oldest first: (expires, auction id, price).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct LastClosed {
    auctions: Vec<(i64, i64, i64)>,
}

impl LastClosed {
    fn average(&self) -> Option<i64> {
        let sum: i64 = self.auctions.iter().map(|&(_, _, price)| price).sum();
        (!self.auctions.is_empty()).then(|| sum / self.auctions.len() as i64)
    }
}

/// The average of the last 10 closed auctions per seller.
fn update_average(
    closed: Closed,
    ctx: &mut KeyedContext<'_, i64, LastClosed>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let seller = closed.seller;
    let last = ctx.state();
    let old = last.average();
    let entry = (closed.expires, closed.auction, closed.price);
    let at = last.auctions.partition_point(|&other| other < entry);
    last.auctions.insert(at, entry);
    if last.auctions.len() > LAST_AUCTIONS {
        last.auctions.remove(0);
    }
    let new = last.average();
    let row = |avg_price| Row { seller, avg_price };
    emit_update(old.map(row), new.map(row), out);
}

/// Adds q6 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode`
/// says.
pub fn build(env: &Env, io: &Io) {
    let averages = auctions(env, io)
        .connect(&bids(env, io))
        .key_by(|auction: &Auction| auction.id, |bid: &Bid| bid.auction)
        .process(ClosingPrice)
        .name("q6_closing_price")
        .key_by(|closed: &Closed| closed.seller)
        .process(update_average)
        .name("q6_average_of_last_10");
    write_changes(&averages, io, HEADER);
}
