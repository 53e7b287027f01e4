//! Nexmark q8, new users: the persons who opened an auction in the same 10 s TUMBLE
//! window in which they registered, once per such window.
//!
//! ```sql
//! SELECT P.id, P.name, P.starttime
//! FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
//!       FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!       GROUP BY id, name, window_start, window_end) P
//! JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
//!       FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!       GROUP BY seller, window_start, window_end) A
//! ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime
//! ```
//!
//! ```text
//! persons  ══hash(id, name)══▶ tumbling 10 s window (GROUP BY) ══╗
//!                                                                 ╠═hash(id)══▶ tumbling 10 s
//! auctions ══hash(seller)════▶ tumbling 10 s window (GROUP BY) ══╝   window join ══▶ write_csv
//! ```
//!
//! Both sides are first made distinct per window (the SQL's `GROUP BY`: a seller with
//! three auctions in a window joins once); each result carries its window's max
//! timestamp `end - 1`, so the two sides of one window meet in the same tumbling window
//! of the join, which equals `starttime`/`endtime` on both sides.

use std::time::Duration;

use crate::connectors::nexmark::{Auction, CsvLine, CsvRow, Person};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{auctions, persons, Count, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["id", "name", "starttime"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The person's id.
    pub id: i64,
    /// The person's name.
    pub name: String,
    /// The window's start, ms since the epoch.
    pub starttime: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.id)
            .text(&self.name)
            .timestamp(self.starttime);
    }
}

/// A person registered in the window starting at `starttime`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PersonInWindow {
    id: i64,
    name: String,
    starttime: i64,
}

/// A seller with at least one auction in the window starting at `starttime`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SellerInWindow {
    seller: i64,
}

/// Adds q8 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let window = || TumblingEventTimeWindows::of(Duration::from_secs(10));
    let new_persons = persons(env, io)
        .key_by(|person: &Person| (person.id, person.name.clone()))
        .window(window())
        .aggregate_with(
            Count::new(),
            |(id, name): &(i64, String),
             context: &WindowContext<'_, TimeWindow>,
             _count: &[i64],
             out: &mut Collector<'_, PersonInWindow>| {
                out.collect(PersonInWindow {
                    id: *id,
                    name: name.clone(),
                    starttime: context.window().start,
                });
            },
        )
        .name("q8_persons_per_window");
    let sellers = auctions(env, io)
        .key_by(|auction: &Auction| auction.seller)
        .window(window())
        .aggregate_with(
            Count::new(),
            |seller: &i64,
             _context: &WindowContext<'_, TimeWindow>,
             _count: &[i64],
             out: &mut Collector<'_, SellerInWindow>| {
                out.collect(SellerInWindow { seller: *seller });
            },
        )
        .name("q8_sellers_per_window");
    let joined = new_persons
        .join(&sellers)
        .where_key(|person: &PersonInWindow| person.id)
        .equal_to(|seller: &SellerInWindow| seller.seller)
        .window(window())
        .apply(|person: &PersonInWindow, _seller: &SellerInWindow| Row {
            id: person.id,
            name: person.name.clone(),
            starttime: person.starttime,
        });
    write_rows(&joined, io, HEADER);
}
