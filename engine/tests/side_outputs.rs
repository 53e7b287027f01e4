//! Side outputs: records a keyed function emits with `ctx.output(&tag, ..)` reach the
//! job through `stream.side_output(&tag)` (another record type, its own parallelism and
//! exchanges downstream), nothing is lost or duplicated, control events (watermarks,
//! end of input) follow the side stream too, and a side stream nobody emits into still
//! ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::prelude::*;
use proptest::prelude::*;

const ODD: OutputTag<String> = OutputTag::new("odd");

/// Records the watermarks a side-stream sink sees.
#[derive(Clone)]
struct Watermarks(Arc<Mutex<Vec<Timestamp>>>);

impl Sink<(u64, usize)> for Watermarks {
    fn write(&mut self, _record: (u64, usize)) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn on_watermark(&mut self, watermark: Timestamp) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().push(watermark);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn side_streams_carry_exactly_what_was_emitted(
        values in proptest::collection::vec(0u64..1000, 0..300),
        parallelism in 1usize..=3,
        side_parallelism in 1usize..=3,
        buffer_size in 1usize..64,
    ) {
        let env = Env::new(JobConfig {
            parallelism: Some(parallelism),
            buffer: BufferConfig { size: buffer_size, timeout: Duration::from_micros(100), count: 4 },
            ..JobConfig::default()
        });
        let routed = env
            .from_iter(values.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(1000))
                    .with_timestamp_assigner(|v: &u64| *v as i64),
            )
            .set_parallelism(1)
            .key_by(|v: &u64| v % 7)
            .process(|v: u64, ctx: &mut KeyedContext<'_, u64, ()>, out| {
                if v % 2 == 0 {
                    out.collect(v);
                } else {
                    ctx.output(&ODD, format!("odd {v}"));
                }
            });
        let evens = routed.collect_vec();
        let side = routed.side_output(&ODD);
        let odds = side.collect_vec();
        // The side stream also goes through an exchange to differently parallel operators.
        let lengths = side
            .key_by(|text: &String| text.len())
            .process(|text: String, ctx: &mut KeyedContext<'_, usize, u64>, out| {
                *ctx.state() += 1;
                out.collect((*ctx.state(), text.len()));
            })
            .set_parallelism(side_parallelism)
            .collect_vec();
        let watermarks = Arc::new(Mutex::new(Vec::new()));
        routed
            .side_output(&ODD)
            .map(|text: String| (0u64, text.len()))
            .sink(Watermarks(Arc::clone(&watermarks)))
            .set_parallelism(1);
        env.execute().unwrap();

        let mut expected_evens: Vec<u64> = values.iter().copied().filter(|v| v % 2 == 0).collect();
        let mut expected_odds: Vec<String> =
            values.iter().filter(|v| *v % 2 == 1).map(|v| format!("odd {v}")).collect();
        let mut actual_evens = evens.take();
        let mut actual_odds = odds.take();
        expected_evens.sort();
        expected_odds.sort();
        actual_evens.sort();
        actual_odds.sort();
        prop_assert_eq!(actual_evens, expected_evens);
        prop_assert_eq!(&actual_odds, &expected_odds);
        prop_assert_eq!(lengths.take().len(), expected_odds.len());
        let watermarks = watermarks.lock().unwrap();
        prop_assert_eq!(watermarks.last().copied(), Some(Timestamp::MAX));
        prop_assert!(watermarks.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn a_side_stream_of_an_operator_that_never_emits_still_ends() {
    let env = Env::new(JobConfig {
        parallelism: Some(2),
        ..JobConfig::default()
    });
    let mapped = env.from_iter(0..100u64).map(|v| v + 1);
    let side = mapped.side_output(&ODD).collect_vec();
    let main = mapped.collect_vec();
    env.execute().unwrap();
    assert!(side.take().is_empty());
    assert_eq!(main.take().len(), 100);
}

/// A source that parses numbers and sends what does not parse to a dead-letter stream.
#[derive(Clone)]
struct Parsing {
    lines: Arc<Vec<String>>,
    next: usize,
    step: usize,
}

const UNPARSED: OutputTag<(usize, String)> = OutputTag::new("unparsed");

impl Source<u64> for Parsing {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.next = subtask.index;
        self.step = subtask.parallelism;
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            let Some(line) = self.lines.get(self.next) else {
                return Ok(SourceStatus::Finished);
            };
            match line.parse() {
                Ok(value) => out.emit(value),
                Err(_) => out.output(&UNPARSED, (self.next, line.clone())),
            }
            self.next += self.step;
        }
        Ok(SourceStatus::Ready)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn sources_emit_side_outputs_too(
        lines in proptest::collection::vec(prop_oneof!["[0-9]{1,5}", "[a-z]{1,3}"], 0..200),
        parallelism in 1usize..=3,
        buffer_size in 1usize..16,
    ) {
        let env = Env::new(JobConfig {
            parallelism: Some(parallelism),
            buffer: BufferConfig { size: buffer_size, timeout: Duration::from_micros(100), count: 2 },
            ..JobConfig::default()
        });
        let numbers = env.add_source(
            "parsing",
            Parsing { lines: Arc::new(lines.clone()), next: 0, step: 1 },
            Boundedness::Bounded,
        );
        let good = numbers.collect_vec();
        // Through a rebalance to another parallelism: end of input must reach it too.
        let bad = numbers.side_output(&UNPARSED).rebalance().map(|(i, _)| i).collect_vec();
        env.execute().unwrap();
        let mut expected_good: Vec<u64> = lines.iter().filter_map(|l| l.parse().ok()).collect();
        let mut expected_bad: Vec<usize> =
            lines.iter().enumerate().filter(|(_, l)| l.parse::<u64>().is_err()).map(|(i, _)| i).collect();
        let (mut good, mut bad) = (good.take(), bad.take());
        expected_good.sort();
        expected_bad.sort();
        good.sort();
        bad.sort();
        prop_assert_eq!(good, expected_good);
        prop_assert_eq!(bad, expected_bad);
    }
}
