//! External sort throughput (BATCH mode's blocking exchange): `--records` records of
//! `--record-bytes` bytes (a 10-byte random key, the rest value) pushed into an
//! `ExternalSorter` whose budget is `1/--budget-fraction` of the data, then merged back
//! in key order; MB/s of records over push + finish + merge on one thread (one core),
//! median of `--repeat` runs. Checks that the merge yields every record in key order.
//!
//! `cargo run --release -p eddy-bench --bin spill -- [--records 5000000]
//!  [--record-bytes 100] [--budget-fraction 10] [--repeat 3] [--dir D]`

use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_storage::spill::{ExternalSorter, SorterConfig, SpillOwner};

fn main() -> Result<()> {
    let mut records: usize = 5_000_000;
    let mut record_bytes: usize = 100;
    let mut fraction: usize = 10;
    let mut repeat: usize = 3;
    let mut dir = std::env::temp_dir().join("eddy-bench-spill");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--records" => records = value.parse()?,
            "--record-bytes" => record_bytes = value.parse()?,
            "--budget-fraction" => fraction = value.parse()?,
            "--repeat" => repeat = value.parse()?,
            "--dir" => dir = PathBuf::from(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    ensure!(record_bytes > 10, "records are a 10-byte key and a value");
    std::fs::create_dir_all(&dir)?;
    let total = records * record_bytes;
    let value = vec![b'v'; record_bytes - 10];
    let mut rates = Vec::new();
    for run in 0..repeat {
        let mut sorter = ExternalSorter::new(SorterConfig {
            spill_dir: dir.clone(),
            owner: SpillOwner::new("bench", "spill", run as u32),
            memory_budget_bytes: total / fraction,
        });
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ run as u64;
        let started = SystemClock.now();
        for _ in 0..records {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = [&state.to_be_bytes()[..], &[0u8, 0]].concat();
            sorter.push(&key, &value)?;
        }
        let spilled = sorter.spilled_run_count();
        let runs = sorter.finish()?;
        let mut count = 0usize;
        let mut previous: Vec<u8> = Vec::new();
        let mut merge = runs.iter();
        while let Some(item) = merge.next_record() {
            let (key, _) = item?;
            ensure!(key >= previous.as_slice(), "merge out of order");
            previous.clear();
            previous.extend_from_slice(key);
            count += 1;
        }
        let secs = SystemClock.now().duration_since(started).as_secs_f64();
        ensure!(count == records, "merged {count} of {records} records");
        let rate = total as f64 / secs / 1e6;
        println!(
            "run {}: {records} records x {record_bytes} B = {:.0} MB, budget 1/{fraction}, {spilled} runs spilled: {secs:.2} s, {rate:.0} MB/s",
            run + 1,
            total as f64 / 1e6
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} MB/s on one core", rates[rates.len() / 2]);
    Ok(())
}
