//! Nexmark q7, highest bid: the bids whose price is the highest of a 10 s TUMBLE window.
//!
//! ```sql
//! SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
//! FROM bid B
//! JOIN (SELECT MAX(price) AS maxprice, window_end as dateTime
//!       FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!       GROUP BY window_start, window_end) B1
//! ON B.price = B1.maxprice
//! WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime
//! ```
//!
//! ```text
//! bids ─▶ window_all tumbling 10 s, max(price) → (window end e, max) ══hash(e)══╗
//!   └───▶ flat_map: (e, bid) for every e with e - 10 s ≤ date_time ≤ e ══hash(e)═╩▶
//!         co-process per e: at watermark e, the bids of e whose price = max ══▶ write_csv
//! ```
//!
//! The SQL is not a window join: it joins every bid with every window whose end `e`
//! satisfies `e - 10 s ≤ dateTime ≤ e` — both bounds inclusive. A bid at exactly
//! `k · 10 s` therefore meets two windows: its own `[k·10 s, k·10 s + 10 s)` and the one
//! that ends at its timestamp; if its price equals that earlier window's max too, it is
//! output twice (the output has no window column). The co-process keeps, per window
//! end, the candidate bids (those not below the running max of the window's own bids)
//! and emits the ones equal to the window's max when the watermark reaches `e`, by which
//! time every bid with `date_time ≤ e` and the window's max have arrived.

use std::time::Duration;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, tumbling_window_end, Io};

/// The output's columns (as the public SQL's SELECT names them; its sink declares
/// `auction, bidder, price, ...` but the values are inserted in SELECT order).
pub const HEADER: &[&str] = &["auction", "price", "bidder", "dateTime", "extra"];

const WINDOW_MS: i64 = 10_000;

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// The bid's price (the window's max).
    pub price: i64,
    /// Bidder id.
    pub bidder: i64,
    /// The bid's event time, ms since the epoch.
    pub date_time: i64,
    /// The bid's padding.
    pub extra: String,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.price)
            .integer(self.bidder)
            .timestamp(self.date_time)
            .text(&self.extra);
    }
}

/// The highest price of the tumbling window ending at `window_end`.
#[derive(Debug, Clone)]
struct WindowMax {
    window_end: i64,
    max_price: i64,
}

/// `MAX(price)`.
struct MaxPrice;

impl AggregateFunction for MaxPrice {
    type Input = Bid;
    type Accumulator = i64;
    type Output = i64;

    fn create_accumulator(&self) -> i64 {
        i64::MIN
    }

    fn add(&self, bid: Bid, accumulator: &mut i64) {
        *accumulator = (*accumulator).max(bid.price);
    }

    fn get_result(&self, accumulator: &i64) -> i64 {
        *accumulator
    }

    fn merge(&self, accumulator: &mut i64, other: i64) {
        *accumulator = (*accumulator).max(other);
    }
}

/// What the join keeps per window end.
#[derive(Debug)]
struct Pending {
    /// The window's max, once it arrived.
    max_price: Option<i64>,
    /// The highest price among the bids inside the window seen so far.
    running_max: i64,
    /// Bids that may still equal the window's max.
    candidates: Vec<Bid>,
    timer_set: bool,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            max_price: None,
            running_max: i64::MIN,
            candidates: Vec::new(),
            timer_set: false,
        }
    }
}

/// Joins each window's max with the bids of `[end - 10 s, end]`, keyed by window end.
#[derive(Clone)]
struct JoinMax;

impl JoinMax {
    fn set_timer(window_end: i64, ctx: &mut KeyedContext<'_, i64, Pending>) {
        if !ctx.state().timer_set {
            ctx.state().timer_set = true;
            ctx.register_event_time_timer(window_end);
        }
    }
}

impl KeyedCoProcessFunction<i64, (i64, Bid), WindowMax, Row, Pending> for JoinMax {
    fn process_element1(
        &mut self,
        (window_end, bid): (i64, Bid),
        ctx: &mut KeyedContext<'_, i64, Pending>,
        _out: &mut Collector<'_, Row>,
    ) {
        JoinMax::set_timer(window_end, ctx);
        let pending = ctx.state();
        // Only bids inside [end - 10 s, end) make the window's max; one at `end` itself
        // (the next window's first millisecond) may only equal it.
        if bid.date_time < window_end && bid.price > pending.running_max {
            pending.running_max = bid.price;
            let floor = bid.price;
            pending
                .candidates
                .retain(|candidate| candidate.price >= floor);
        }
        if bid.price >= pending.running_max {
            pending.candidates.push(bid);
        }
    }

    fn process_element2(
        &mut self,
        max: WindowMax,
        ctx: &mut KeyedContext<'_, i64, Pending>,
        _out: &mut Collector<'_, Row>,
    ) {
        JoinMax::set_timer(max.window_end, ctx);
        ctx.state().max_price = Some(max.max_price);
    }

    fn on_timer(
        &mut self,
        _time: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, i64, Pending>,
        out: &mut Collector<'_, Row>,
    ) {
        let pending = std::mem::take(ctx.state());
        ctx.clear_state();
        let Some(max_price) = pending.max_price else {
            return; // only bids at the end instant of a window without bids
        };
        for bid in pending.candidates {
            if bid.price == max_price {
                out.collect(Row {
                    auction: bid.auction,
                    price: bid.price,
                    bidder: bid.bidder,
                    date_time: bid.date_time,
                    extra: bid.extra,
                });
            }
        }
    }
}

/// The window ends `e` with `e - 10 s ≤ time_ms ≤ e`: the end of the tumbling window
/// holding `time_ms`, and `time_ms` itself when it is a window boundary.
fn window_ends_covering(time_ms: i64) -> impl Iterator<Item = i64> {
    let own = tumbling_window_end(time_ms, WINDOW_MS);
    let previous = (time_ms.rem_euclid(WINDOW_MS) == 0).then_some(time_ms);
    std::iter::once(own).chain(previous)
}

/// Adds q7 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let bids = bids(env, io);
    let max_prices = bids
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(
            WINDOW_MS as u64,
        )))
        .aggregate_with(
            MaxPrice,
            |_: &(),
             context: &WindowContext<'_, TimeWindow>,
             max: &[i64],
             out: &mut Collector<'_, WindowMax>| {
                for &max_price in max {
                    out.collect(WindowMax {
                        window_end: context.window().end,
                        max_price,
                    });
                }
            },
        )
        .name("q7_max_price");
    let candidates = bids
        .flat_map(|bid: Bid| {
            let mut ends = window_ends_covering(bid.date_time);
            let first = ends.next();
            let second = ends.next();
            // The second copy is rare (a bid on a window boundary): clone only then.
            let boundary = second.map(|end| (end, bid.clone()));
            first.map(|end| (end, bid)).into_iter().chain(boundary)
        })
        .name("q7_bid_windows");
    let highest = candidates
        .connect(&max_prices)
        .key_by(
            |(window_end, _): &(i64, Bid)| *window_end,
            |max: &WindowMax| max.window_end,
        )
        .process(JoinMax)
        .name("q7_join_max");
    write_rows(&highest, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bid_on_a_boundary_belongs_to_two_windows() {
        assert_eq!(window_ends_covering(0).collect::<Vec<_>>(), [10_000, 0]);
        assert_eq!(window_ends_covering(1).collect::<Vec<_>>(), [10_000]);
        assert_eq!(window_ends_covering(9_999).collect::<Vec<_>>(), [10_000]);
        assert_eq!(
            window_ends_covering(10_000).collect::<Vec<_>>(),
            [20_000, 10_000]
        );
        assert_eq!(window_ends_covering(-1).collect::<Vec<_>>(), [0]);
    }
}
