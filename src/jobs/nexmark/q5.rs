//! Nexmark q5, hot items: per HOP window (10 s, every 2 s), the auctions with the most
//! bids (all of them on a tie).
//!
//! ```sql
//! SELECT AuctionBids.auction, AuctionBids.num
//! FROM (SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
//!       FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!       GROUP BY auction, window_start, window_end) AS AuctionBids
//! JOIN (SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
//!       FROM (<the same counts>) AS CountBids
//!       GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
//! ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
//!    AND AuctionBids.num >= MaxBids.maxn
//! ```
//!
//! ```text
//! bids ══hash(auction)══▶ sliding 10 s / 2 s window, count ══hash(window end)══▶
//!     tumbling 2 s window: keep the counts ≥ the window's max ══▶ write_csv
//! ```
//!
//! The counts of window `[s, e)` carry its max timestamp `e - 1`; keyed by `e` they meet
//! in the 2 s tumbling window `[e - 2 s, e)`, which fires when the watermark passes
//! `e - 1`, i.e. once every count of that HOP window is there. That second window is the
//! `GROUP BY starttime, endtime` + join of the SQL.

use std::time::Duration;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Count, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "num"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Its number of bids in the window.
    pub num: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction).integer(self.num);
    }
}

/// The bid count of one auction in one HOP window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct AuctionCount {
    auction: i64,
    num: i64,
    window_end: i64,
}

/// Adds q5 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    // Only the auction id travels to the counting subtasks (8 bytes, not the bid).
    let counts = bids(env, io)
        .map(|bid: Bid| bid.auction)
        .name("q5_auction")
        .key_by(|auction: &i64| *auction)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .aggregate_with(
            Count::new(),
            |auction: &i64,
             context: &WindowContext<'_, TimeWindow>,
             count: &[i64],
             out: &mut Collector<'_, AuctionCount>| {
                for &num in count {
                    out.collect(AuctionCount {
                        auction: *auction,
                        num,
                        window_end: context.window().end,
                    });
                }
            },
        )
        .name("q5_count_per_auction");
    let hot = counts
        .key_by(|count: &AuctionCount| count.window_end)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(2)))
        .process(
            |_window_end: &i64,
             _context: &WindowContext<'_, TimeWindow>,
             counts: &[AuctionCount],
             out: &mut Collector<'_, Row>| {
                let max = counts.iter().map(|count| count.num).max().unwrap_or(0);
                for count in counts.iter().filter(|count| count.num >= max) {
                    out.collect(Row {
                        auction: count.auction,
                        num: count.num,
                    });
                }
            },
        )
        .name("q5_hot_items");
    write_rows(&hot, io, HEADER);
}
