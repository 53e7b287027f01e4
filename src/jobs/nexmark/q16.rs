//! Nexmark q16, channel statistics report: q15 per channel and day, with the latest
//! minute (`HH:mm`) of a bid. An updating result.
//!
//! ```sql
//! SELECT channel, DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
//!     max(DATE_FORMAT(dateTime, 'HH:mm')) as `minute`,
//!     count(*) AS total_bids, ... (the twelve counts of q15)
//! FROM bid
//! GROUP BY channel, DATE_FORMAT(dateTime, 'yyyy-MM-dd')
//! ```
//!
//! ```text
//! bids ══hash(channel, day)══▶ process: q15's statistics + max minute → changelog ══▶ write_csv
//! ```

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, Text};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::q15::{BidStatistics, Counts};
use super::{bids, day_of, minute_of, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "channel",
    "day",
    "minute",
    "total_bids",
    "rank1_bids",
    "rank2_bids",
    "rank3_bids",
    "total_bidders",
    "rank1_bidders",
    "rank2_bidders",
    "rank3_bidders",
    "total_auctions",
    "rank1_auctions",
    "rank2_auctions",
    "rank3_auctions",
];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The channel.
    pub channel: Text,
    /// `yyyy-MM-dd`.
    pub day: String,
    /// The latest `HH:mm` of a bid.
    pub minute: String,
    /// q15's counts.
    pub counts: Counts,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.text(&self.channel).text(&self.day).text(&self.minute);
        self.counts.write_fields(line);
    }
}

/// The state of one channel and day.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ChannelStatistics {
    statistics: BidStatistics,
    minute: Option<String>,
}

fn add_bid(
    bid: Bid,
    ctx: &mut KeyedContext<'_, (Text, String), ChannelStatistics>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let (channel, day) = ctx.key().clone();
    let state = ctx.state();
    let row = |minute: &String, counts| Row {
        channel: channel.clone(),
        day: day.clone(),
        minute: minute.clone(),
        counts,
    };
    let old = state
        .minute
        .as_ref()
        .map(|minute| row(minute, state.statistics.counts()));
    state.statistics.add(&bid);
    let minute = minute_of(bid.date_time);
    if state.minute.as_ref().is_none_or(|max| minute > *max) {
        state.minute = Some(minute);
    }
    let new = state
        .minute
        .as_ref()
        .map(|minute| row(minute, state.statistics.counts()));
    emit_update(old, new, out);
}

/// Adds q16 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| (bid.channel.clone(), day_of(bid.date_time)))
        .process(add_bid)
        .name("q16_channel_statistics");
    write_changes(&changes, io, HEADER);
}
