//! Nexmark q12, processing-time windows: how many bids each bidder makes per 10 s of
//! *processing* time (wall clock), not event time.
//!
//! ```sql
//! CREATE VIEW B AS SELECT *, PROCTIME() as p_time FROM bid;
//! SELECT bidder, count(*) as bid_count, window_start AS starttime, window_end AS endtime
//! FROM TABLE(TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
//! GROUP BY bidder, window_start, window_end
//! ```
//!
//! ```text
//! bids ══hash(bidder)══▶ tumbling 10 s processing-time window, count ══▶ write_csv
//! ```
//!
//! The engine has processing-time windows (`TumblingProcessingTimeWindows`, fired by
//! the job's `Clock`), so this is a plain window aggregate. A bid falls into the window
//! of the moment the window operator processes it; a window fires when the clock
//! passes its end. When a bounded input ends, the windows still open fire in BATCH
//! mode; in STREAMING mode they are dropped (the engine's window operator fires pending
//! processing-time timers at the end of input only in BATCH mode), so a STREAMING run
//! shorter than 10 s writes nothing. The rows depend on the wall clock and the run's
//! speed: no reference can check them row by row, only invariants (windows are 10 s
//! long and aligned to the epoch; per bidder the counts add up to its bids in BATCH
//! mode, to at most that in STREAMING mode).

use std::time::Duration;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Count, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["bidder", "bid_count", "starttime", "endtime"];

/// The window size: 10 s of processing time.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The bidder's person id.
    pub bidder: i64,
    /// Bids of the bidder processed in the window.
    pub bid_count: i64,
    /// The window's start (processing time, ms since the epoch).
    pub starttime: i64,
    /// The window's end (exclusive).
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

/// Adds q12 reading `io.input` and writing `io.output` (none: a blackhole) to `env`.
pub fn build(env: &Env, io: &Io) {
    // Only the bidder id travels to the windows (8 bytes, not the bid).
    let counts = bids(env, io)
        .map(|bid: Bid| bid.bidder)
        .name("q12_bidder")
        .key_by(|bidder: &i64| *bidder)
        .window(TumblingProcessingTimeWindows::of(WINDOW))
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
        .name("q12_processing_time_windows");
    write_rows(&counts, io, HEADER);
}
