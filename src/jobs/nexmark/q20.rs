//! Nexmark q20, expand bid with auction: every bid on a category-10 auction, with the
//! auction's columns.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, B.dateTime, B.extra,
//!     itemName, description, initialBid, reserve, A.dateTime, expires, seller, category, A.extra
//! FROM bid AS B INNER JOIN auction AS A on B.auction = A.id
//! WHERE A.category = 10
//! ```
//!
//! ```text
//! bids ══════════════hash(auction)══╗
//!                                   ╠══▶ KeyedCoProcessFunction ══▶ write_csv
//! auctions ──filter(category 10)────╝    (hash(id))
//! ```
//!
//! A regular join, as q3: each side keeps its records of the key for ever, so a bid
//! that arrives before its auction still joins. Both inputs are append-only, so is the
//! result. The columns are named as the public query's sink names them (`bid_dateTime`,
//! `bid_extra`, `auction_dateTime`, `auction_extra`).

use crate::connectors::nexmark::{Auction, Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{auctions, bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &[
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
    "bid_dateTime",
    "bid_extra",
    "itemName",
    "description",
    "initialBid",
    "reserve",
    "auction_dateTime",
    "expires",
    "seller",
    "category",
    "auction_extra",
];

/// One result row: a bid and its auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The bid.
    pub bid: Bid,
    /// Its auction.
    pub auction: Auction,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        let (bid, auction) = (&self.bid, &self.auction);
        line.integer(bid.auction)
            .integer(bid.bidder)
            .integer(bid.price)
            .text(&bid.channel)
            .text(&bid.url)
            .timestamp(bid.date_time)
            .text(&bid.extra)
            .text(&auction.item_name)
            .text(&auction.description)
            .integer(auction.initial_bid)
            .integer(auction.reserve)
            .timestamp(auction.date_time)
            .timestamp(auction.expires)
            .integer(auction.seller)
            .integer(auction.category);
        line.text(&auction.extra);
    }
}

/// What an auction id has in state: its (category-10) auctions and its bids.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Joined {
    auctions: Vec<Auction>,
    bids: Vec<Bid>,
}

/// The join of bids and auctions on `auction = id`.
#[derive(Clone)]
struct JoinAuction;

impl KeyedCoProcessFunction<i64, Bid, Auction, Row, Joined> for JoinAuction {
    fn process_element1(
        &mut self,
        bid: Bid,
        ctx: &mut KeyedContext<'_, i64, Joined>,
        out: &mut Collector<'_, Row>,
    ) {
        let joined = ctx.state();
        for auction in &joined.auctions {
            out.collect(Row {
                bid: bid.clone(),
                auction: auction.clone(),
            });
        }
        joined.bids.push(bid);
    }

    fn process_element2(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, i64, Joined>,
        out: &mut Collector<'_, Row>,
    ) {
        let joined = ctx.state();
        for bid in &joined.bids {
            out.collect(Row {
                bid: bid.clone(),
                auction: auction.clone(),
            });
        }
        joined.auctions.push(auction);
    }
}

/// Adds q20 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let category_10 = auctions(env, io)
        .filter(|auction: &Auction| auction.category == 10)
        .name("q20_category_10");
    let rows = bids(env, io)
        .connect(&category_10)
        .key_by(|bid: &Bid| bid.auction, |auction: &Auction| auction.id)
        .process(JoinAuction)
        .name("q20_join");
    write_rows(&rows, io, HEADER);
}
