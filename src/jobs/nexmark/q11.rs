//! Nexmark q11, user sessions: the number of bids of each bidder per session (a gap of
//! 10 s of event time closes a session).
//!
//! ```sql
//! SELECT B.bidder, count(*) as bid_count,
//!        SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
//!        SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
//! FROM bid B
//! GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND)
//! ```
//!
//! ```text
//! bids ══hash(bidder)══▶ session window (gap 10 s), count ══▶ write_csv
//! ```
//!
//! As in Flink, a bid at `t` opens the window `[t, t + 10 s)`, and windows that overlap
//! *or touch* merge (two bids exactly 10 s apart are one session); the session's end is
//! its last bid + 10 s.

use std::time::Duration;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Count, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["bidder", "bid_count", "starttime", "endtime"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The bidder's person id.
    pub bidder: i64,
    /// Bids in the session.
    pub bid_count: i64,
    /// The session's first bid, ms since the epoch.
    pub starttime: i64,
    /// The session's last bid + 10 s, ms since the epoch.
    pub endtime: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.bidder)
            .integer(self.bid_count)
            .timestamp(self.starttime)
            .timestamp(self.endtime);
    }
}

/// Adds q11 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    // Only the bidder id travels to the session windows (8 bytes, not the bid).
    let sessions = bids(env, io)
        .map(|bid: Bid| bid.bidder)
        .name("q11_bidder")
        .key_by(|bidder: &i64| *bidder)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(10)))
        .aggregate_with(
            Count::new(),
            |bidder: &i64,
             context: &WindowContext<'_, TimeWindow>,
             count: &[i64],
             out: &mut Collector<'_, Row>| {
                for &bid_count in count {
                    out.collect(Row {
                        bidder: *bidder,
                        bid_count,
                        starttime: context.window().start,
                        endtime: context.window().end,
                    });
                }
            },
        )
        .name("q11_sessions");
    write_rows(&sessions, io, HEADER);
}
