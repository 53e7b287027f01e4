//! Nexmark q2, selection: the bids on a few auctions (ids that are multiples of 123).
//!
//! ```sql
//! SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0
//! ```
//!
//! ```text
//! bids ──filter──map──▶ write_csv
//! ```

use std::path::Path;

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow};
use crate::prelude::*;

use super::changelog::{write_rows, ResultMode};
use super::{bids, Input};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "price"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id (a multiple of 123).
    pub auction: i64,
    /// Price.
    pub price: i64,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction).integer(self.price);
    }
}

/// Adds q2 reading `input` and writing `output` (none: a blackhole) to `env`; an
/// append-only result, so `mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, input: &Input, output: Option<&Path>, mode: ResultMode) {
    let rows = bids(env, input)
        // SQL's MOD takes the dividend's sign, as Rust's `%`
        .filter(|bid: &Bid| bid.auction % 123 == 0)
        .name("q2_select")
        .map(|bid: Bid| Row {
            auction: bid.auction,
            price: bid.price,
        })
        .name("q2_project");
    write_rows(&rows, output, HEADER, mode);
}
