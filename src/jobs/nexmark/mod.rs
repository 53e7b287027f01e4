//! The Nexmark queries, written with the public DataStream API, with Apache Flink SQL's
//! semantics. q0–q5, q7, q8 and q11 equal, row for row, what Flink 2.3 writes for the
//! public Nexmark SQL on the same input (`tests/nexmark_flink.rs`, and for q4
//! `tests/nexmark_queries.rs`); q6, q9, q10, q13 and q14–q22 equal an independent
//! evaluation of their SQL (`tests/nexmark_queries.rs`); q12 (processing time) is
//! checked by invariants. See `docs/nexmark.md`.
//!
//! * [`q0`] — pass-through: every bid.
//! * [`q1`] — currency conversion: every bid, its price × 0.908 (`DECIMAL(23, 3)`).
//! * [`q2`] — selection: the bids on auctions whose id is a multiple of 123.
//! * [`q3`] — local item suggestion: sellers in OR, ID or CA and their category-10
//!   auctions (a regular join, kept for ever; append-only, as both inputs are).
//! * [`q4`] — average closing price per category (updating).
//! * [`q5`] — hot items: the auctions with the most bids per HOP window (10 s every 2 s).
//! * [`q6`] — average selling price of each seller's last 10 closed auctions (updating).
//! * [`q7`] — highest bid: the bids whose price is the highest of a 10 s TUMBLE window.
//! * [`q8`] — new users: persons who opened an auction in the 10 s TUMBLE window they
//!   registered in (a window join).
//! * [`q9`] — winning bids: each auction's best bid before it expired (updating).
//! * [`q10`] — log to file system: every bid with its day and minute.
//! * [`q11`] — user sessions: bids per bidder per SESSION window (10 s gap).
//! * [`q12`] — bids per bidder per 10 s of processing time.
//! * [`q13`] — bids joined with a bounded side input (`auction % 10000`).
//! * [`q14`] — calculation: bids in a price range, with computed columns.
//! * [`q15`], [`q16`], [`q17`] — bid statistics per day, per channel and day, per
//!   auction and day (updating).
//! * [`q18`] — last bid per bidder and auction (updating).
//! * [`q19`] — top-10 bids per auction (updating).
//! * [`q20`] — bids with their category-10 auction (a regular join).
//! * [`q21`] — bids with a channel id; [`q22`] — bids with their URL directories.
//!
//! Updating results are changelogs ([`changelog`]): [`Query::build_with`] writes either
//! the final result of a bounded run or the changelog itself ([`ResultMode`]).
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
    format_timestamp_ms, Auction, Bid, GeneratedTable, NexmarkCsvSource, NexmarkGenerator,
    NexmarkModel, Person,
};
use crate::prelude::*;

pub mod changelog;
pub mod measure;
pub mod q0;
pub mod q1;
pub mod q10;
pub mod q11;
pub mod q12;
pub mod q13;
pub mod q14;
pub mod q15;
pub mod q16;
pub mod q17;
pub mod q18;
pub mod q19;
pub mod q2;
pub mod q20;
pub mod q21;
pub mod q22;
pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q8;
pub mod q9;

pub use changelog::{Change, ResultMode, RowKind};
pub use measure::{Io, RunStats};

/// How far behind/// How far behind the largest timestamp seen the watermark is (Flink SQL:
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
    /// Average closing price per category (updating).
    Q4,
    /// Hot items (HOP 2 s / 10 s).
    Q5,
    /// Average selling price of each seller's last 10 closed auctions (updating).
    Q6,
    /// Highest bid (TUMBLE 10 s).
    Q7,
    /// New users (TUMBLE 10 s window join of persons and auctions).
    Q8,
    /// Winning bids (updating).
    Q9,
    /// Log to file system (the rows, without the partitioned sink).
    Q10,
    /// User sessions (SESSION 10 s per bidder).
    Q11,
    /// Bids per bidder per 10 s of processing time.
    Q12,
    /// Bids joined with a bounded side input.
    Q13,
    /// Calculation (filter and computed columns).
    Q14,
    /// Bidding statistics per day (updating).
    Q15,
    /// Channel statistics per channel and day (updating).
    Q16,
    /// Auction statistics per auction and day (updating).
    Q17,
    /// Last bid per bidder and auction (updating).
    Q18,
    /// Top-10 bids per auction (updating).
    Q19,
    /// Bids expanded with their category-10 auction (a join).
    Q20,
    /// Bids with a channel id.
    Q21,
    /// Bids with their URL directories.
    Q22,
}

impl Query {
    /// Every query, in order.
    pub const ALL: [Query; 23] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q6,
        Query::Q7,
        Query::Q8,
        Query::Q9,
        Query::Q10,
        Query::Q11,
        Query::Q12,
        Query::Q13,
        Query::Q14,
        Query::Q15,
        Query::Q16,
        Query::Q17,
        Query::Q18,
        Query::Q19,
        Query::Q20,
        Query::Q21,
        Query::Q22,
    ];

    /// `q0`, `q1`, ...
    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q3 => "q3",
            Query::Q4 => "q4",
            Query::Q5 => "q5",
            Query::Q6 => "q6",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
            Query::Q9 => "q9",
            Query::Q10 => "q10",
            Query::Q11 => "q11",
            Query::Q12 => "q12",
            Query::Q13 => "q13",
            Query::Q14 => "q14",
            Query::Q15 => "q15",
            Query::Q16 => "q16",
            Query::Q17 => "q17",
            Query::Q18 => "q18",
            Query::Q19 => "q19",
            Query::Q20 => "q20",
            Query::Q21 => "q21",
            Query::Q22 => "q22",
        }
    }

    /// The output's column names (those of the public SQL's SELECT, or of its sink
    /// where the SELECT leaves them unnamed or ambiguous).
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Query::Q0 => q0::HEADER,
            Query::Q1 => q1::HEADER,
            Query::Q2 => q2::HEADER,
            Query::Q3 => q3::HEADER,
            Query::Q4 => q4::HEADER,
            Query::Q5 => q5::HEADER,
            Query::Q6 => q6::HEADER,
            Query::Q7 => q7::HEADER,
            Query::Q8 => q8::HEADER,
            Query::Q9 => q9::HEADER,
            Query::Q10 => q10::HEADER,
            Query::Q11 => q11::HEADER,
            Query::Q12 => q12::HEADER,
            Query::Q13 => q13::HEADER,
            Query::Q14 => q14::HEADER,
            Query::Q15 => q15::HEADER,
            Query::Q16 => q16::HEADER,
            Query::Q17 => q17::HEADER,
            Query::Q18 => q18::HEADER,
            Query::Q19 => q19::HEADER,
            Query::Q20 => q20::HEADER,
            Query::Q21 => q21::HEADER,
            Query::Q22 => q22::HEADER,
        }
    }

    /// Whether the result updates (an aggregate or top-N without a window): its rows are
    /// a changelog, materialized into the final result unless [`ResultMode::Changelog`]
    /// asks for the changelog itself. The other queries' results are append-only.
    pub fn updates(self) -> bool {
        matches!(
            self,
            Query::Q4
                | Query::Q6
                | Query::Q9
                | Query::Q15
                | Query::Q16
                | Query::Q17
                | Query::Q18
                | Query::Q19
        )
    }

    /// The files (tables) the query reads from an input folder.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Query::Q3 | Query::Q8 => &["person.csv", "auction.csv"],
            Query::Q4 | Query::Q6 | Query::Q9 | Query::Q20 => &["auction.csv", "bid.csv"],
            _ => &["bid.csv"],
        }
    }

    /// Adds the query reading `input` and writing the canonical CSV file `output` (or
    /// nothing: a blackhole sink) to `env`; an updating query's file holds its final
    /// result once a bounded run ends. Same as [`Query::build_with`] with
    /// [`ResultMode::FinalResult`].
    pub fn build(self, env: &Env, input: &Input, output: Option<&Path>) {
        self.build_with(env, input, output, ResultMode::FinalResult);
    }

    /// Adds the query reading `input` and writing `output` (none: a blackhole sink) to
    /// `env`, as `mode` says: [`ResultMode::FinalResult`] — the result's rows in
    /// canonical form (an updating query's changelog materialized at the end of a
    /// bounded run); [`ResultMode::Changelog`] — the changelog, one line per change with
    /// an `op` column (`+I`, `-U`, `+U`, `-D`) first, as `eddy nexmark run --changelog`
    /// writes it (append-only queries: every row `+I`).
    pub fn build_with(self, env: &Env, input: &Input, output: Option<&Path>, mode: ResultMode) {
        let io = Io::new(
            input.clone(),
            output.map(Path::to_path_buf),
            mode,
            Arc::clone(&env.config().clock),
        );
        self.build_io(env, &io);
    }

    /// Adds the query reading `io.input` and writing `io.output` as `io.mode` says (see
    /// [`Query::build_with`]) to `env`, its sources and sinks reporting to `io.stats`:
    /// what `eddy nexmark run` measures.
    pub fn build_io(self, env: &Env, io: &Io) {
        match self {
            Query::Q0 => q0::build(env, io),
            Query::Q1 => q1::build(env, io),
            Query::Q2 => q2::build(env, io),
            Query::Q3 => q3::build(env, io),
            Query::Q4 => q4::build(env, io),
            Query::Q5 => q5::build(env, io),
            Query::Q6 => q6::build(env, io),
            Query::Q7 => q7::build(env, io),
            Query::Q8 => q8::build(env, io),
            Query::Q9 => q9::build(env, io),
            Query::Q10 => q10::build(env, io),
            Query::Q11 => q11::build(env, io),
            Query::Q12 => q12::build(env, io),
            Query::Q13 => q13::build(env, io),
            Query::Q14 => q14::build(env, io),
            Query::Q15 => q15::build(env, io),
            Query::Q16 => q16::build(env, io),
            Query::Q17 => q17::build(env, io),
            Query::Q18 => q18::build(env, io),
            Query::Q19 => q19::build(env, io),
            Query::Q20 => q20::build(env, io),
            Query::Q21 => q21::build(env, io),
            Query::Q22 => q22::build(env, io),
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

/// One Nexmark table of `io.input`, counted and stamped for `io.stats`, with event time `date_time` and the watermark
/// [`WATERMARK_DELAY_MS`] behind the largest timestamp: a file is read by one source
/// subtask, the generator runs with the job's parallelism.
pub fn read_table<T: GeneratedTable>(env: &Env, io: &Io) -> DataStream<T> {
    // eddy's bounded out-of-orderness watermark is `max - delay - 1` (Flink's DataStream
    // `BoundedOutOfOrdernessWatermarks`); Flink SQL's `dateTime - INTERVAL '4' SECOND` is
    // `max - 4 s`, so the delay is one millisecond less.
    let delay = Duration::from_millis((WATERMARK_DELAY_MS - 1) as u64);
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(delay)
        .with_timestamp_assigner(|record: &T| record.date_time());
    let probe = io.stats.probe();
    match &io.input {
        Input::Files(dir) => env
            .add_source(
                &format!("read_{}", T::TABLE),
                NexmarkCsvSource::<T>::in_dir(dir)
                    .with_probe(probe)
                    .on_bad_record(io.on_bad_record.clone(), io.stats.bad_records_counter()),
                Boundedness::Bounded,
            )
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(strategy)
            .name(&format!("{}_event_time", T::TABLE))
            .set_parallelism(1),
        Input::Generator(model) => env
            .add_source(
                &format!("generate_{}", T::TABLE),
                NexmarkGenerator::<T>::new(Arc::clone(model), Arc::clone(&env.config().clock))
                    .with_probe(probe),
                Boundedness::Bounded,
            )
            .assign_timestamps_and_watermarks(strategy)
            .name(&format!("{}_event_time", T::TABLE)),
    }
}

/// The persons of `io.input`, see [`read_table`].
pub fn persons(env: &Env, io: &Io) -> DataStream<Person> {
    read_table(env, io)
}

/// The auctions of `io.input`, see [`read_table`].
pub fn auctions(env: &Env, io: &Io) -> DataStream<Auction> {
    read_table(env, io)
}

/// The bids of `io.input`, see [`read_table`].
pub fn bids(env: &Env, io: &Io) -> DataStream<Bid> {
    read_table(env, io)
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

/// The price range of a price in q15–q17's `filter` clauses: 0 below 10,000, 1 from
/// 10,000 below 1,000,000, 2 from 1,000,000.
pub fn price_rank(price: i64) -> usize {
    if price < 10_000 {
        0
    } else if price < 1_000_000 {
        1
    } else {
        2
    }
}

/// `DATE_FORMAT(time, 'yyyy-MM-dd')` of a timestamp (UTC).
pub fn day_of(time_ms: i64) -> String {
    let text = format_timestamp_ms(time_ms);
    text.get(..10).unwrap_or(&text).to_string()
}

/// `DATE_FORMAT(time, 'HH:mm')` of a timestamp (UTC).
pub fn minute_of(time_ms: i64) -> String {
    let text = format_timestamp_ms(time_ms);
    text.get(11..16).unwrap_or(&text).to_string()
}

/// `HOUR(time)` of a timestamp (UTC), 0–23.
pub fn hour_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(3_600_000).rem_euclid(24)
}
