//! Nexmark q15, bidding statistics report: per day, how many bids, distinct bidders and
//! distinct auctions, in total and per price range. An updating result.
//!
//! ```sql
//! SELECT DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
//!      count(*) AS total_bids,
//!      count(*) filter (where price < 10000) AS rank1_bids,
//!      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
//!      count(*) filter (where price >= 1000000) AS rank3_bids,
//!      count(distinct bidder) AS total_bidders,
//!      count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
//!      ... (rank2_bidders, rank3_bidders; the same for auction)
//! FROM bid
//! GROUP BY DATE_FORMAT(dateTime, 'yyyy-MM-dd')
//! ```
//!
//! ```text
//! bids ══hash(day)══▶ process: counts and distinct sets → changelog ══▶ write_csv
//! ```
//!
//! [`BidStatistics`] keeps the counts and the sets of bidders and auctions seen, in
//! total and per price range ([`price_rank`](super::price_rank)); q16 uses it too.

use std::collections::HashSet;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{emit_update, write_changes, Change};
use super::{bids, day_of, price_rank, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "day",
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

/// The twelve counts: bids, distinct bidders, distinct auctions — each in total, then
/// for prices below 10,000, from 10,000 below 1,000,000, and from 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts(pub [i64; 12]);

impl Counts {
    /// Appends the twelve counts to `line`.
    pub fn write_fields(&self, line: &mut CsvLine) {
        for count in self.0 {
            line.integer(count);
        }
    }
}

/// Running counts of bids and distinct bidders and auctions, in total and per price
/// range (index 0: total, 1–3: the ranges).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BidStatistics {
    bids: [i64; 4],
    bidders: [HashSet<i64>; 4],
    auctions: [HashSet<i64>; 4],
}

impl BidStatistics {
    /// Counts `bid` in.
    pub fn add(&mut self, bid: &Bid) {
        for index in [0, 1 + price_rank(bid.price)] {
            self.bids[index] += 1;
            self.bidders[index].insert(bid.bidder);
            self.auctions[index].insert(bid.auction);
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let mut counts = [0; 12];
        for index in 0..4 {
            counts[index] = self.bids[index];
            counts[4 + index] = self.bidders[index].len() as i64;
            counts[8 + index] = self.auctions[index].len() as i64;
        }
        Counts(counts)
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `yyyy-MM-dd`.
    pub day: String,
    /// The counts.
    pub counts: Counts,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.text(&self.day);
        self.counts.write_fields(line);
    }
}

fn add_bid(
    bid: Bid,
    ctx: &mut KeyedContext<'_, String, BidStatistics>,
    out: &mut Collector<'_, Change<Row>>,
) {
    let day = ctx.key().clone();
    let statistics = ctx.state();
    let old = (statistics.bids[0] > 0).then(|| statistics.counts());
    statistics.add(&bid);
    let new = statistics.counts();
    let row = |counts| Row {
        day: day.clone(),
        counts,
    };
    emit_update(old.map(row), Some(row(new)), out);
}

/// Adds q15 reading `io.input` and writing `io.output` (none: a blackhole) as `io.mode` says.
pub fn build(env: &Env, io: &Io) {
    let changes = bids(env, io)
        .key_by(|bid: &Bid| day_of(bid.date_time))
        .process(add_bid)
        .name("q15_bidding_statistics");
    write_changes(&changes, io, HEADER);
}
