//! The Nexmark queries q5, q7, q8 and q11 over the three Nexmark CSV files, written with
//! the public DataStream API, with Apache Flink SQL's semantics: their output equals, row
//! for row, what Flink 2.3 writes for the public Nexmark SQL on the same files (see
//! `docs/nexmark.md` and `tests/nexmark_flink.rs`).
//!
//! * [`q5`] — hot items: the auctions with the most bids per HOP window (10 s every 2 s).
//! * [`q7`] — highest bid: the bids whose price is the highest of a 10 s TUMBLE window.
//! * [`q8`] — new users: persons who opened an auction in the 10 s TUMBLE window they
//!   registered in (a window join).
//! * [`q11`] — user sessions: bids per bidder per SESSION window (10 s gap).
//!
//! Event time is `date_time`; each file is read by one source subtask (as Flink reads a
//! CSV file) whose watermark trails the largest timestamp seen by 4 s — exactly Flink
//! SQL's `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`. Results are written
//! with [`CanonicalCsvSink`]: the public SQL's column names as header, rows sorted as
//! text, timestamps as `YYYY-MM-DD HH:MM:SS.mmm`.

use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::connectors::nexmark::{
    Auction, Bid, CanonicalCsvSink, CsvRow, NexmarkCsvSource, NexmarkTable, Person,
};
use crate::prelude::*;

pub mod q11;
pub mod q5;
pub mod q7;
pub mod q8;

/// How far behind the largest timestamp seen the watermark is (Flink SQL:
/// `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`).
pub const WATERMARK_DELAY_MS: i64 = 4_000;

/// The queries this module has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Query {
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
    pub const ALL: [Query; 4] = [Query::Q5, Query::Q7, Query::Q8, Query::Q11];

    /// `q5`, `q7`, `q8`, `q11`.
    pub fn name(self) -> &'static str {
        match self {
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
            Query::Q11 => "q11",
        }
    }

    /// The output's column names (those of the public SQL's SELECT).
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Query::Q5 => q5::HEADER,
            Query::Q7 => q7::HEADER,
            Query::Q8 => q8::HEADER,
            Query::Q11 => q11::HEADER,
        }
    }

    /// Adds the query reading `input_dir` (`person.csv`, `auction.csv`, `bid.csv`) and
    /// writing the canonical CSV file `output` to `env`.
    pub fn build(self, env: &Env, input_dir: &Path, output: &Path) {
        match self {
            Query::Q5 => q5::build(env, input_dir, output),
            Query::Q7 => q7::build(env, input_dir, output),
            Query::Q8 => q8::build(env, input_dir, output),
            Query::Q11 => q11::build(env, input_dir, output),
        }
    }
}

impl FromStr for Query {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Query::ALL
            .into_iter()
            .find(|query| query.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown Nexmark query '{text}' (have q5, q7, q8, q11)"))
    }
}

/// One Nexmark table read from `input_dir` by one source subtask, with event time
/// `date_time` and the watermark [`WATERMARK_DELAY_MS`] behind the largest timestamp.
pub fn read_table<T: NexmarkTable + Clone>(env: &Env, input_dir: &Path) -> DataStream<T> {
    // eddy's bounded out-of-orderness watermark is `max - delay - 1` (Flink's DataStream
    // `BoundedOutOfOrdernessWatermarks`); Flink SQL's `dateTime - INTERVAL '4' SECOND` is
    // `max - 4 s`, so the delay is one millisecond less.
    let delay = Duration::from_millis((WATERMARK_DELAY_MS - 1) as u64);
    env.add_source(
        &format!("read_{}", T::TABLE),
        NexmarkCsvSource::<T>::in_dir(input_dir),
        Boundedness::Bounded,
    )
    .set_parallelism(1)
    .assign_timestamps_and_watermarks(
        WatermarkStrategy::for_bounded_out_of_orderness(delay)
            .with_timestamp_assigner(|record: &T| record.date_time()),
    )
    .name(&format!("{}_event_time", T::TABLE))
    .set_parallelism(1)
}

/// The persons of `input_dir` (`person.csv`), see [`read_table`].
pub fn persons(env: &Env, input_dir: &Path) -> DataStream<Person> {
    read_table(env, input_dir)
}

/// The auctions of `input_dir` (`auction.csv`), see [`read_table`].
pub fn auctions(env: &Env, input_dir: &Path) -> DataStream<Auction> {
    read_table(env, input_dir)
}

/// The bids of `input_dir` (`bid.csv`), see [`read_table`].
pub fn bids(env: &Env, input_dir: &Path) -> DataStream<Bid> {
    read_table(env, input_dir)
}

/// Writes `rows` into the canonical CSV file `output` (one sink subtask).
pub fn write_canonical<R: CsvRow + Data>(rows: &DataStream<R>, output: &Path, header: &[&str]) {
    rows.sink(CanonicalCsvSink::new(output, header))
        .name("write_csv")
        .set_parallelism(1);
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
