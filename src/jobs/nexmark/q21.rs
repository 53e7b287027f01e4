//! Nexmark q21, add channel id: the bids of the four known channels or with a
//! `channel_id` in their URL, with that id.
//!
//! ```sql
//! SELECT auction, bidder, price, channel,
//!     CASE
//!         WHEN lower(channel) = 'apple' THEN '0'
//!         WHEN lower(channel) = 'google' THEN '1'
//!         WHEN lower(channel) = 'facebook' THEN '2'
//!         WHEN lower(channel) = 'baidu' THEN '3'
//!         ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
//!     END AS channel_id
//! FROM bid
//! WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) is not null
//!    OR lower(channel) in ('apple', 'google', 'facebook', 'baidu')
//! ```
//!
//! ```text
//! bids ──flat_map (filter + project)──▶ write_csv
//! ```
//!
//! The regular expression is matched by hand ([`extract_channel_id`]): the first
//! `channel_id=` at the start of the URL or right after a `&`, up to the next `&`.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "bidder", "price", "channel", "channel_id"];

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price.
    pub price: i64,
    /// The channel.
    pub channel: Text,
    /// Its id.
    pub channel_id: String,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .integer(self.price)
            .text(&self.channel)
            .text(&self.channel_id);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

const KEY: &str = "channel_id=";

/// `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`: the value of the first
/// `channel_id=` that starts the URL or follows a `&`, up to the next `&`; `None`
/// (SQL's NULL) if there is none.
pub fn extract_channel_id(url: &str) -> Option<&str> {
    let start = if url.starts_with(KEY) {
        KEY.len()
    } else {
        url.match_indices("&channel_id=").next()?.0 + 1 + KEY.len()
    };
    let value = &url[start..];
    Some(value.split('&').next().unwrap_or(value))
}

/// The id of one of the four known channels (`lower(channel)`), if it is one.
pub fn known_channel_id(channel: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 4] = [
        ("apple", "0"),
        ("google", "1"),
        ("facebook", "2"),
        ("baidu", "3"),
    ];
    if channel.is_ascii() {
        // no allocation for the usual (ASCII) channel names
        KNOWN
            .iter()
            .find(|(name, _)| channel.eq_ignore_ascii_case(name))
            .map(|&(_, id)| id)
    } else {
        // Unicode lower case, as SQL's LOWER (e.g. the Kelvin sign lowers to 'k')
        let lower = channel.to_lowercase();
        KNOWN
            .iter()
            .find(|(name, _)| lower == *name)
            .map(|&(_, id)| id)
    }
}

/// The row of `bid`, if it passes the `WHERE`.
pub fn select(bid: Bid) -> Option<Row> {
    let channel_id = known_channel_id(&bid.channel)
        .or_else(|| extract_channel_id(&bid.url))?
        .to_string();
    Some(Row {
        auction: bid.auction,
        ingest: bid.ingest,
        bidder: bid.bidder,
        price: bid.price,
        channel: bid.channel,
        channel_id,
    })
}

/// Adds q21 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io).flat_map(select).name("q21_channel_id");
    write_rows(&rows, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_id_follows_a_start_or_an_ampersand() {
        assert_eq!(extract_channel_id("channel_id=7&x=1"), Some("7"));
        assert_eq!(
            extract_channel_id("https://a/b?q=1&channel_id=42"),
            Some("42")
        );
        assert_eq!(
            extract_channel_id("https://a/b?q=1&channel_id=&y"),
            Some("")
        );
        assert_eq!(extract_channel_id("https://a/b?xchannel_id=42"), None);
        assert_eq!(extract_channel_id("https://a/b?q=1"), None);
        assert_eq!(known_channel_id("Google"), Some("1"));
        assert_eq!(known_channel_id("channel-7"), None);
        assert_eq!(known_channel_id("BAIDU"), Some("3"));
        assert_eq!(
            known_channel_id("faceboo\u{212a}"),
            Some("2"),
            "Kelvin sign"
        );
    }
}
