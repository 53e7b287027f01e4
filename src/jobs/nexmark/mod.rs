//! The Nexmark queries q0, q1, q2, q3, q5, q7, q8 and q11, written with the public
//! DataStream API, with Apache Flink SQL's semantics: their output equals, row for row,
//! what Flink 2.3 writes for the public Nexmark SQL on the same input (see
//! `docs/nexmark.md` and `tests/nexmark_flink.rs`).
//!
//! * [`q0`] — pass-through: every bid.
//! * [`q1`] — currency conversion: every bid, its price × 0.908 (`DECIMAL(23, 3)`).
//! * [`q2`] — selection: the bids on auctions whose id is a multiple of 123.
//! * [`q3`] — local item suggestion: sellers in OR, ID or CA and their category-10
//!   auctions (a regular join, kept for ever; append-only, as both inputs are).
//! * [`q5`] — hot items: the auctions with the most bids per HOP window (10 s every 2 s).
//! * [`q7`] — highest bid: the bids whose price is the highest of a 10 s TUMBLE window.
//! * [`q8`] — new users: persons who opened an auction in the 10 s TUMBLE window they
//!   registered in (a window join).
//! * [`q11`] — user sessions: bids per bidder per SESSION window (10 s gap).
//!
//! The input ([`Input`]) is either the three CSV files of a folder — each read by one
//! source subtask, as Flink reads a CSV file — or the generator
//! ([`NexmarkGenerator`](crate::connectors::nexmark::NexmarkGenerator), one parallel
//! source per table read). Event time is `date_time` and the watermark trails the
//! largest timestamp seen by 4 s — exactly Flink SQL's `WATERMARK FOR dateTime AS
//! dateTime - INTERVAL '4' SECOND`. Results are written with [`CanonicalCsvSink`]: the
//! public SQL's column names as header, rows sorted as text, timestamps as
//! `YYYY-MM-DD HH:MM:SS.mmm`; or dropped (a blackhole sink) when there is no output file.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::connectors::nexmark::{
    Auction, Bid, CanonicalCsvSink, CsvRow, GeneratedTable, NexmarkCsvSource, NexmarkGenerator,
    NexmarkModel, Person,
};
use crate::prelude::*;

pub mod q0;
pub mod q1;
pub mod q11;
pub mod q2;
pub mod q3;
pub mod q5;
pub mod q7;
pub mod q8;

/// How far behind the largest timestamp seen the watermark is (Flink SQL:
/// `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`).
pub const WATERMARK_DELAY_MS: i64 = 4_000;

/// The queries this module has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Query {
    /// Pass-through.
    Q0,
    /// Currency conversion.
    Q1,
    /// Selection.
    Q2,
    /// Local item suggestion (a join of auctions and persons).
    Q3,
    /// Hot items (HOP 2 s / 10 s).
    Q5,
    /// Highest bid (TUMBLE 10 s).
    Q7,
    /// New users (TUMBLE 10 s window join of persons and auctions).
    Q8,
    /// User sessions (SESSION 10 s per bidder).
    Q11,
}

impl Query {
    /// Every query, in order.
    pub const ALL: [Query; 8] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q5,
        Query::Q7,
        Query::Q8,
        Query::Q11,
    ];

    /// `q0`, `q1`, ...
    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q3 => "q3",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
            Query::Q11 => "q11",
        }
    }

    /// The output's column names (those of the public SQL's SELECT).
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Query::Q0 => q0::HEADER,
            Query::Q1 => q1::HEADER,
            Query::Q2 => q2::HEADER,
            Query::Q3 => q3::HEADER,
            Query::Q5 => q5::HEADER,
            Query::Q7 => q7::HEADER,
            Query::Q8 => q8::HEADER,
            Query::Q11 => q11::HEADER,
        }
    }

    /// The files (tables) the query reads from an input folder.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Query::Q0 | Query::Q1 | Query::Q2 | Query::Q5 | Query::Q7 | Query::Q11 => &["bid.csv"],
            Query::Q3 | Query::Q8 => &["person.csv", "auction.csv"],
        }
    }

    /// Adds the query reading `input` and writing the canonical CSV file `output` (or
    /// nothing: a blackhole sink) to `env`.
    pub fn build(self, env: &Env, input: &Input, output: Option<&Path>) {
        match self {
            Query::Q0 => q0::build(env, input, output),
            Query::Q1 => q1::build(env, input, output),
            Query::Q2 => q2::build(env, input, output),
            Query::Q3 => q3::build(env, input, output),
            Query::Q5 => q5::build(env, input, output),
            Query::Q7 => q7::build(env, input, output),
            Query::Q8 => q8::build(env, input, output),
            Query::Q11 => q11::build(env, input, output),
        }
    }
}

impl FromStr for Query {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Query::ALL
            .into_iter()
            .find(|query| query.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let names: Vec<&str> = Query::ALL.iter().map(|query| query.name()).collect();
                format!("unknown Nexmark query '{text}' (have {})", names.join(", "))
            })
    }
}

/// Where a query's events come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// `person.csv`, `auction.csv`, `bid.csv` in this folder.
    Files(PathBuf),
    /// The generator, one parallel source per table read.
    Generator(Arc<NexmarkModel>),
}

/// One Nexmark table of `input`, with event time `date_time` and the watermark
/// [`WATERMARK_DELAY_MS`] behind the largest timestamp: a file is read by one source
/// subtask, the generator runs with the job's parallelism.
pub fn read_table<T: GeneratedTable>(env: &Env, input: &Input) -> DataStream<T> {
    // eddy's bounded out-of-orderness watermark is `max - delay - 1` (Flink's DataStream
    // `BoundedOutOfOrdernessWatermarks`); Flink SQL's `dateTime - INTERVAL '4' SECOND` is
    // `max - 4 s`, so the delay is one millisecond less.
    let delay = Duration::from_millis((WATERMARK_DELAY_MS - 1) as u64);
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(delay)
        .with_timestamp_assigner(|record: &T| record.date_time());
    match input {
        Input::Files(dir) => env
            .add_source(
                &format!("read_{}", T::TABLE),
                NexmarkCsvSource::<T>::in_dir(dir),
                Boundedness::Bounded,
            )
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(strategy)
            .name(&format!("{}_event_time", T::TABLE))
            .set_parallelism(1),
        Input::Generator(model) => env
            .add_source(
                &format!("generate_{}", T::TABLE),
                NexmarkGenerator::<T>::new(Arc::clone(model), Arc::clone(&env.config().clock)),
                Boundedness::Bounded,
            )
            .assign_timestamps_and_watermarks(strategy)
            .name(&format!("{}_event_time", T::TABLE)),
    }
}

/// The persons of `input`, see [`read_table`].
pub fn persons(env: &Env, input: &Input) -> DataStream<Person> {
    read_table(env, input)
}

/// The auctions of `input`, see [`read_table`].
pub fn auctions(env: &Env, input: &Input) -> DataStream<Auction> {
    read_table(env, input)
}

/// The bids of `input`, see [`read_table`].
pub fn bids(env: &Env, input: &Input) -> DataStream<Bid> {
    read_table(env, input)
}

/// Writes `rows` into the canonical CSV file `output` (one sink subtask), or drops them
/// (a blackhole sink with the job's parallelism) when there is no `output`.
pub fn write_canonical<R: CsvRow + Data>(
    rows: &DataStream<R>,
    output: Option<&Path>,
    header: &[&str],
) {
    match output {
        Some(path) => {
            rows.sink(CanonicalCsvSink::new(path, header))
                .name("write_csv")
                .set_parallelism(1);
        }
        None => {
            rows.sink_fn(drop).name("blackhole");
        }
    }
}

/// `COUNT(*)` as an incremental window aggregate.
pub struct Count<T>(PhantomData<fn(T)>);

impl<T> Count<T> {
    /// The count aggregate.
    pub fn new() -> Self {
        Count(PhantomData)
    }
}

impl<T> Default for Count<T> {
    fn default() -> Self {
        Count::new()
    }
}

impl<T> Clone for Count<T> {
    fn clone(&self) -> Self {
        Count::new()
    }
}

impl<T: 'static> AggregateFunction for Count<T> {
    type Input = T;
    type Accumulator = i64;
    type Output = i64;

    fn create_accumulator(&self) -> i64 {
        0
    }

    fn add(&self, _value: T, accumulator: &mut i64) {
        *accumulator += 1;
    }

    fn get_result(&self, accumulator: &i64) -> i64 {
        *accumulator
    }

    fn merge(&self, accumulator: &mut i64, other: i64) {
        *accumulator += other;
    }
}

/// The end of the tumbling window of `size_ms` (aligned to the epoch) holding `time_ms`.
pub fn tumbling_window_end(time_ms: i64, size_ms: i64) -> i64 {
    time_ms - time_ms.rem_euclid(size_ms) + size_ms
}
