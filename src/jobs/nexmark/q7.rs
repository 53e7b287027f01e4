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
//! bids ─flat_map: (e, bid) for every window end e with e - 10 s ≤ date_time ≤ e,
//!       dropping a bid below this subtask's running max of window e
//!   ══hash(e)══▶ process per e: running max of the window's own bids, the candidates
//!                not below it; at watermark e, those equal to the max ══▶ write_csv
//! ```
//!
//! The SQL is not a window join: it joins every bid with every window whose end `e`
//! satisfies `e - 10 s ≤ dateTime ≤ e` — both bounds inclusive. A bid at exactly
//! `k · 10 s` therefore meets two windows: its own `[k·10 s, k·10 s + 10 s)` and the one
//! that ends at its timestamp; if its price equals that earlier window's max too, it is
//! output twice (the output has no window column).
//!
//! One keyed stage computes both sides of the join: per window end `e`, the running
//! max of the bids of `[e - 10 s, e)` *is* the window's `MAX(price)` once the watermark
//! reaches `e` (by then every bid with `date_time ≤ e` has arrived), and the candidates
//! kept are the bids not below the running max; at watermark `e` those equal to the
//! max are emitted. Before the shuffle, each source subtask drops the bids below its
//! own running max of the window they would join: that local max is at most the
//! window's max, so a dropped bid could never equal it. Only the few bids that raise a
//! subtask's running max (or tie it) cross cores, instead of every bid — twice, in a
//! plan with a separate `MAX` window. Bids later than the watermark (never in the
//! reference sets) are dropped, as the SQL's window drops them.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, tumbling_window_end, Io};

/// The output's columns (as the public SQL's SELECT names them; its sink declares
/// `auction, bidder, price, ...` but the values are inserted in SELECT order).
pub const HEADER: &[&str] = &["auction", "price", "bidder", "dateTime", "extra"];

const WINDOW_MS: i64 = 10_000;

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub extra: Text,
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

/// How many recent windows a subtask remembers its running max of (a bid may be up
/// to 4 s late, and a boundary bid also joins the previous window).
const RECENT_WINDOWS: usize = 4;

/// A source subtask's running max price per recent window end (see the module docs).
#[derive(Debug, Clone, Default)]
struct LocalMax {
    /// (window end, max price of the window's bids seen here), `None`: unused.
    recent: [Option<(i64, i64)>; RECENT_WINDOWS],
}

impl LocalMax {
    /// Whether the copy of a bid at `time` with `price` for the window ending at
    /// `window_end` may join that window's max; records the price if the bid is in the
    /// window.
    fn admits(&mut self, window_end: i64, time: i64, price: i64) -> bool {
        let own = time < window_end;
        let slot = match self
            .recent
            .iter()
            .position(|entry| entry.is_some_and(|(end, _)| end == window_end))
        {
            Some(slot) => slot,
            None => {
                if !own {
                    return true; // nothing known of that window here
                }
                // a new window: replace an unused entry or the oldest window, unless
                // this one is older than all of them (a very late bid: let it pass)
                let oldest = (0..RECENT_WINDOWS)
                    .min_by_key(|&slot| self.recent[slot].map_or(i64::MIN, |(end, _)| end))
                    .unwrap_or(0);
                if let Some((end, _)) = self.recent[oldest] {
                    if end > window_end {
                        return true;
                    }
                }
                self.recent[oldest] = Some((window_end, price));
                return true;
            }
        };
        let Some((end, max)) = self.recent[slot] else {
            return true;
        };
        if price < max {
            return false;
        }
        if own {
            self.recent[slot] = Some((end, price));
        }
        true
    }
}

/// What one window end has in state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Pending {
    /// The max price of the window's own bids so far (`None`: no bid of the window).
    running_max: Option<i64>,
    /// Bids not below `running_max` (own and boundary ones).
    candidates: Vec<Row>,
    timer_set: bool,
}

/// The join of the bids with their windows' max, per window end.
#[derive(Clone)]
struct HighestBids;

impl KeyedProcessFunction<i64, (i64, Row), Row, Pending> for HighestBids {
    fn process_element(
        &mut self,
        (window_end, bid): (i64, Row),
        ctx: &mut KeyedContext<'_, i64, Pending>,
        _out: &mut Collector<'_, Row>,
    ) {
        if window_end <= ctx.current_watermark() {
            return; // late: the window has been emitted
        }
        if !ctx.state().timer_set {
            ctx.state().timer_set = true;
            ctx.register_event_time_timer(window_end);
        }
        let pending = ctx.state();
        // Only bids inside [end - 10 s, end) make the window's max; one at `end` itself
        // (the next window's first millisecond) may only equal it.
        if bid.date_time < window_end && pending.running_max.is_none_or(|max| bid.price > max) {
            pending.running_max = Some(bid.price);
            let floor = bid.price;
            pending
                .candidates
                .retain(|candidate| candidate.price >= floor);
        }
        if pending.running_max.is_none_or(|max| bid.price >= max) {
            pending.candidates.push(bid);
        }
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
        let Some(max_price) = pending.running_max else {
            return; // only bids at the end instant of a window without bids
        };
        for bid in pending.candidates {
            if bid.price == max_price {
                out.collect(bid);
            }
        }
    }
}

fn window_ends_covering(time_ms: i64) -> impl Iterator<Item = i64> {
    let own = tumbling_window_end(time_ms, WINDOW_MS);
    let previous = (time_ms.rem_euclid(WINDOW_MS) == 0).then_some(time_ms);
    std::iter::once(own).chain(previous)
}

/// Adds q7 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let mut local_max = LocalMax::default();
    let candidates = bids(env, io)
        .flat_map(move |bid: Bid| {
            let mut ends = window_ends_covering(bid.date_time);
            let first = ends
                .next()
                .filter(|&end| local_max.admits(end, bid.date_time, bid.price));
            let second = ends
                .next()
                .filter(|&end| local_max.admits(end, bid.date_time, bid.price));
            let row = Row {
                auction: bid.auction,
                price: bid.price,
                bidder: bid.bidder,
                date_time: bid.date_time,
                extra: bid.extra,
            };
            // The second copy is rare (a bid on a window boundary): clone only then.
            let boundary = second.map(|end| (end, row.clone()));
            first.map(|end| (end, row)).into_iter().chain(boundary)
        })
        .name("q7_bid_windows");
    let highest = candidates
        .key_by(|(window_end, _): &(i64, Row)| *window_end)
        .process_function(HighestBids)
        .name("q7_highest_bids");
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

    #[test]
    fn a_subtask_drops_only_bids_below_its_running_max() {
        let mut local = LocalMax::default();
        assert!(local.admits(10_000, 1_000, 50));
        assert!(!local.admits(10_000, 2_000, 49));
        assert!(local.admits(10_000, 3_000, 50), "a tie passes");
        assert!(local.admits(10_000, 4_000, 70));
        assert!(!local.admits(10_000, 5_000, 60));
        // a boundary copy is compared with the previous window, but does not raise it
        assert!(!local.admits(10_000, 10_000, 69));
        assert!(local.admits(10_000, 10_000, 70));
        assert!(local.admits(20_000, 10_000, 1), "its own window is new");
        // windows far back are forgotten; a bid for one of them passes
        for end in [30_000, 40_000, 50_000, 60_000] {
            assert!(local.admits(end, end - 1, 100));
        }
        assert!(local.admits(10_000, 9_000, 0));
    }
}
