//! Nexmark q3, local item suggestion: who sells category-10 items in Oregon, Idaho or
//! California.
//!
//! ```sql
//! SELECT P.name, P.city, P.state, A.id
//! FROM auction AS A INNER JOIN person AS P on A.seller = P.id
//! WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')
//! ```
//!
//! ```text
//! auctions ──filter(category 10)──╮
//!                                 ├══hash(seller / id)══▶ KeyedCoProcessFunction ══▶ write_csv
//! persons ──filter(OR, ID, CA)────╯
//! ```
//!
//! A regular (unwindowed) inner join, as Flink's: each side keeps every record of its
//! key in state for ever and each new record is joined with the other side's records
//! so far, whichever arrives first. Both inputs are append-only, so the result is too
//! (no retractions): a bounded run's output is the final result, in either mode. The
//! filters run before the shuffle (Flink pushes them down the same way).

use crate::connectors::nexmark::{Auction, CsvLine, CsvRow, Person};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{auctions, persons, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["name", "city", "state", "id"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The seller's name.
    pub name: String,
    /// The seller's city.
    pub city: String,
    /// The seller's state.
    pub state: String,
    /// The auction's id.
    pub id: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.text(&self.name)
            .text(&self.city)
            .text(&self.state)
            .integer(self.id);
    }
}

/// What a seller (a person id) has in state: its person rows (one, unless ids repeat)
/// and the ids of its category-10 auctions.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Seller {
    persons: Vec<(String, String, String)>,
    auctions: Vec<i64>,
}

/// The join of auctions and persons on `seller = id`.
#[derive(Clone)]
struct JoinSeller;

impl KeyedCoProcessFunction<i64, Auction, Person, Row, Seller> for JoinSeller {
    fn process_element1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, i64, Seller>,
        out: &mut Collector<'_, Row>,
    ) {
        let seller = ctx.state();
        for (name, city, state) in &seller.persons {
            out.collect(Row {
                name: name.clone(),
                city: city.clone(),
                state: state.clone(),
                id: auction.id,
            });
        }
        seller.auctions.push(auction.id);
    }

    fn process_element2(
        &mut self,
        person: Person,
        ctx: &mut KeyedContext<'_, i64, Seller>,
        out: &mut Collector<'_, Row>,
    ) {
        let seller = ctx.state();
        for &id in &seller.auctions {
            out.collect(Row {
                name: person.name.clone(),
                city: person.city.clone(),
                state: person.state.clone(),
                id,
            });
        }
        seller
            .persons
            .push((person.name, person.city, person.state));
    }
}

/// Adds q3 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let category_10 = auctions(env, io)
        .filter(|auction: &Auction| auction.category == 10)
        .name("q3_category_10");
    let local_sellers = persons(env, io)
        .filter(|person: &Person| matches!(person.state.as_str(), "OR" | "ID" | "CA"))
        .name("q3_or_id_ca");
    let rows = category_10
        .connect(&local_sellers)
        .key_by(
            |auction: &Auction| auction.seller,
            |person: &Person| person.id,
        )
        .process(JoinSeller)
        .name("q3_join");
    write_rows(&rows, io, HEADER);
}
