//! The Nexmark model: [`Person`], [`Auction`], [`Bid`], with the columns of the public
//! Nexmark CSV files, and [`NexmarkTable`], which reads one from a CSV row.
//!
//! Timestamps (`date_time`, `expires`) are milliseconds since the epoch (UTC).

use std::time::Instant;

use csv::ByteRecord;

use super::text::Text;
use super::time::parse_timestamp_ms;

/// When a record entered its source, by the job's [`Clock`](eddy_engine::clock::Clock):
/// benchmark metadata carried along a record so that the sink can measure its latency
/// (`eddy nexmark run`'s `latency_us`). It is **not part of the record's value**: any two
/// stamps compare equal and hash alike, so records equal as data stay equal whether or
/// when they were stamped. 16 bytes, `Copy`, never allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestTime(pub Option<Instant>);

impl IngestTime {
    /// No stamp (a record built outside a source, or by a source that does not stamp).
    pub const NONE: IngestTime = IngestTime(None);

    /// The instant the record entered its source, if stamped.
    pub fn instant(self) -> Option<Instant> {
        self.0
    }
}

impl PartialEq for IngestTime {
    /// Always equal: the stamp is metadata, not data.
    fn eq(&self, _other: &IngestTime) -> bool {
        true
    }
}

impl Eq for IngestTime {}

impl std::hash::Hash for IngestTime {
    /// Hashes nothing, consistent with [`IngestTime`]'s `PartialEq`.
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

/// One of the three Nexmark tables: its file, its columns and how a CSV row becomes a
/// record.
pub trait NexmarkTable: Sized + Send + 'static {
    /// The table's name (`person`, `auction`, `bid`).
    const TABLE: &'static str;
    /// The file the table is read from (`person.csv`, ...).
    const FILE_NAME: &'static str;
    /// The column names, in file order (the header line).
    const COLUMNS: &'static [&'static str];

    /// The record of one row (exactly `COLUMNS.len()` fields, checked by the caller);
    /// the error names the column and says what is wrong.
    fn from_row(row: &ByteRecord) -> Result<Self, String>;

    /// The event time (`date_time`), in milliseconds since the epoch.
    fn date_time(&self) -> i64;

    /// Stamps the record with the instant it entered its source, if the table carries
    /// an [`IngestTime`] (only [`Bid`] does: the stateless queries that measure latency
    /// per record read bids); a no-op otherwise.
    fn set_ingest(&mut self, at: Instant) {
        let _ = at;
    }
}

/// A person registering with the auction site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Person {
    /// Person id (from 1000, dense).
    pub id: i64,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email_address: String,
    /// Credit card number.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state.
    pub state: String,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// An auction opened by a seller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Auction {
    /// Auction id (from 1000, dense).
    pub id: i64,
    /// Item name.
    pub item_name: String,
    /// Item description.
    pub description: String,
    /// Initial bid.
    pub initial_bid: i64,
    /// Reserve price.
    pub reserve: i64,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// When the auction closes, ms since the epoch.
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// Category id.
    pub category: i64,
    /// Padding.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// Price (in cents).
    pub price: i64,
    /// Channel the bid came through.
    pub channel: Text,
    /// URL of the bid.
    pub url: Text,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: Text,
    /// When the bid entered its source (benchmark metadata, not data: see
    /// [`IngestTime`]; not kept in snapshots, a restored bid has none).
    #[serde(skip)]
    pub ingest: IngestTime,
}

/// Field `index` (column `name`) as UTF-8 text.
fn text<'r>(row: &'r ByteRecord, index: usize, name: &str) -> Result<&'r str, String> {
    let bytes = row.get(index).unwrap_or_default();
    std::str::from_utf8(bytes).map_err(|error| format!("column {name}: not valid UTF-8 ({error})"))
}

fn string(row: &ByteRecord, index: usize, name: &str) -> Result<String, String> {
    text(row, index, name).map(str::to_owned)
}

fn integer(row: &ByteRecord, index: usize, name: &str) -> Result<i64, String> {
    let field = text(row, index, name)?;
    field
        .parse::<i64>()
        .map_err(|error| format!("column {name}: '{field}' is not an integer ({error})"))
}

fn timestamp(row: &ByteRecord, index: usize, name: &str) -> Result<i64, String> {
    parse_timestamp_ms(text(row, index, name)?).map_err(|error| format!("column {name}: {error}"))
}

impl NexmarkTable for Person {
    const TABLE: &'static str = "person";
    const FILE_NAME: &'static str = "person.csv";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "email_address",
        "credit_card",
        "city",
        "state",
        "date_time",
        "extra",
    ];

    fn from_row(row: &ByteRecord) -> Result<Self, String> {
        Ok(Person {
            id: integer(row, 0, "id")?,
            name: string(row, 1, "name")?,
            email_address: string(row, 2, "email_address")?,
            credit_card: string(row, 3, "credit_card")?,
            city: string(row, 4, "city")?,
            state: string(row, 5, "state")?,
            date_time: timestamp(row, 6, "date_time")?,
            extra: string(row, 7, "extra")?,
        })
    }

    fn date_time(&self) -> i64 {
        self.date_time
    }
}

impl NexmarkTable for Auction {
    const TABLE: &'static str = "auction";
    const FILE_NAME: &'static str = "auction.csv";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "item_name",
        "description",
        "initial_bid",
        "reserve",
        "date_time",
        "expires",
        "seller",
        "category",
        "extra",
    ];

    fn from_row(row: &ByteRecord) -> Result<Self, String> {
        Ok(Auction {
            id: integer(row, 0, "id")?,
            item_name: string(row, 1, "item_name")?,
            description: string(row, 2, "description")?,
            initial_bid: integer(row, 3, "initial_bid")?,
            reserve: integer(row, 4, "reserve")?,
            date_time: timestamp(row, 5, "date_time")?,
            expires: timestamp(row, 6, "expires")?,
            seller: integer(row, 7, "seller")?,
            category: integer(row, 8, "category")?,
            extra: string(row, 9, "extra")?,
        })
    }

    fn date_time(&self) -> i64 {
        self.date_time
    }
}

impl NexmarkTable for Bid {
    const TABLE: &'static str = "bid";
    const FILE_NAME: &'static str = "bid.csv";
    const COLUMNS: &'static [&'static str] = &[
        "auction",
        "bidder",
        "price",
        "channel",
        "url",
        "date_time",
        "extra",
    ];

    fn from_row(row: &ByteRecord) -> Result<Self, String> {
        Ok(Bid {
            auction: integer(row, 0, "auction")?,
            bidder: integer(row, 1, "bidder")?,
            price: integer(row, 2, "price")?,
            channel: string(row, 3, "channel")?.into(),
            url: string(row, 4, "url")?.into(),
            date_time: timestamp(row, 5, "date_time")?,
            extra: string(row, 6, "extra")?.into(),
            ingest: IngestTime::NONE,
        })
    }

    fn date_time(&self) -> i64 {
        self.date_time
    }

    fn set_ingest(&mut self, at: Instant) {
        self.ingest = IngestTime(Some(at));
    }
}
