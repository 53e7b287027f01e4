//! Nexmark q4, average price per category: the average closing price (highest bid
//! between opening and expiry) of the auctions of each category. An updating result.
//!
//! ```sql
//! SELECT Q.category, AVG(Q.final)
//! FROM (SELECT MAX(B.price) AS final, A.category
//!       FROM auction A, bid B
//!       WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//!       GROUP BY A.id, A.category) Q
//! GROUP BY Q.category
//! ```
//!
//! ```text
//! auctions ══hash(id)══════╗
//!                          ╠═▶ co-process per auction: max price of the bids in
//! bids ═══hash(auction)════╝   [dateTime, expires] → changelog of (id, category, final)
//!     ══hash(category)══▶ process per category: sum and count → changelog of
//!     (category, avg) ══▶ write_csv (final result or changelog)
//! ```
//!
//! Both stages are unwindowed, as in the SQL: the join keeps each auction (and the
//! bids that arrive before it) for ever, and a new highest bid updates its auction's
//! `final`. The second stage consumes that changelog — `-U old` subtracts, `+U new`
//! adds — and emits its own with [`emit_update`]. `AVG` of a `BIGINT` is a `BIGINT`
//! in Flink: the sum divided by the count, truncated (Java's `long` division).

use crate::connectors::nexmark::{Auction, Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{auctions, bids, Io};

/// The output's columns (Flink names the unnamed `AVG(Q.final)` `EXPR$1`).
pub const HEADER: &[&str] = &["category", "EXPR$1"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Category id.
    pub category: i64,
    /// The average closing price of its auctions (truncated to an integer).
    pub average_final: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.category).integer(self.average_final);
    }
}

/// The closing price so far of one auction (the inner `GROUP BY A.id, A.category`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionFinal {
    /// Auction id.
    pub id: i64,
    /// Its category.
    pub category: i64,
    /// The highest price of its bids between opening and expiry.
    pub final_price: i64,
}

/// What the join keeps per auction id.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AuctionState {
    /// `(opens, expires, category)` once the auction arrived.
    auction: Option<(i64, i64, i64)>,
    /// Bids that arrived before their auction.
    early_bids: Vec<(i64, i64)>,
    /// The highest price of a bid in range so far.
    final_price: Option<i64>,
}

impl AuctionState {
    /// Takes in a bid `(date_time, price)` of an arrived auction; emits the update of
    /// the auction's final price if it raises it.
    fn offer(
        &mut self,
        id: i64,
        (date_time, price): (i64, i64),
        out: &mut Collector<'_, Change<AuctionFinal>>,
    ) {
        let Some((opens, expires, category)) = self.auction else {
            self.early_bids.push((date_time, price));
            return;
        };
        if date_time < opens || date_time > expires {
            return;
        }
        let old = self.final_price;
        let new = old.map_or(price, |old| old.max(price));
        self.final_price = Some(new);
        let row = |final_price| AuctionFinal {
            id,
            category,
            final_price,
        };
        emit_update(old.map(row), Some(row(new)), out);
    }
}

/// The join of auctions and bids, with the running max per auction.
#[derive(Clone)]
struct MaxPerAuction;

impl KeyedCoProcessFunction<i64, Auction, Bid, Change<AuctionFinal>, AuctionState>
    for MaxPerAuction
{
    fn process_element1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, i64, AuctionState>,
        out: &mut Collector<'_, Change<AuctionFinal>>,
    ) {
        let state = ctx.state();
        if state.auction.is_some() {
            return; // a repeated auction id: the first one counts
        }
        state.auction = Some((auction.date_time, auction.expires, auction.category));
        for bid in std::mem::take(&mut state.early_bids) {
            state.offer(auction.id, bid, out);
        }
    }

    fn process_element2(
        &mut self,
        bid: Bid,
        ctx: &mut KeyedContext<'_, i64, AuctionState>,
        out: &mut Collector<'_, Change<AuctionFinal>>,
    ) {
        ctx.state()
            .offer(bid.auction, (bid.date_time, bid.price), out);
    }
}

/// Sum and count of the closing prices of one category.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CategoryAverage {
    sum: i128,
    count: i64,
}

impl CategoryAverage {
    fn average(&self, category: i64) -> Option<Row> {
        (self.count > 0).then(|| Row {
            category,
            average_final: i64::try_from(self.sum / i128::from(self.count)).unwrap_or(i64::MAX),
        })
    }
}

/// `AVG(final)` per category over the changelog of the closing prices.
fn average_per_category(
    change: Change<AuctionFinal>,
    ctx: &mut KeyedContext<'_, i64, CategoryAverage>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let category = *ctx.key();
    let state = ctx.state();
    let old = state.average(category);
    let price = i128::from(change.row.final_price);
    if change.kind.is_addition() {
        state.sum += price;
        state.count += 1;
    } else {
        state.sum -= price;
        state.count -= 1;
    }
    let new = state.average(category);
    if state.count <= 0 {
        ctx.clear_state();
    }
    emit_update(old, new, out);
}

/// Adds q4 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let finals = auctions(env, io)
        .connect(&bids(env, io))
        .key_by(|auction: &Auction| auction.id, |bid: &Bid| bid.auction)
        .process(MaxPerAuction)
        .name("q4_max_per_auction");
    let averages = finals
        .key_by(|change: &Change<AuctionFinal>| change.row.category)
        .process(average_per_category)
        .name("q4_average_per_category");
    write_changes(&averages, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_truncates_as_java_long_division() {
        let state = CategoryAverage { sum: 7, count: 2 };
        assert_eq!(state.average(10).map(|row| row.average_final), Some(3));
        assert_eq!(CategoryAverage::default().average(10), None);
    }
}
