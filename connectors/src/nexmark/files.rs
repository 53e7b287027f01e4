//! [`write_files`]: the generator's events as the three Nexmark CSV files (`person.csv`,
//! `auction.csv`, `bid.csv`, each with its header line) and a `manifest.json`, in the
//! exact form `gen_nexmark.py` writes them (no quoting: no generated field holds a `,`,
//! a `"` or a line end).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use super::generator::{Event, NexmarkModel};
use super::model::{Auction, Bid, NexmarkTable, Person};
use super::time::{format_timestamp_ms, write_timestamp_ms};

const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// How many records of each table were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Rows of `person.csv`.
    pub persons: u64,
    /// Rows of `auction.csv`.
    pub auctions: u64,
    /// Rows of `bid.csv`.
    pub bids: u64,
}

struct TableFile {
    writer: BufWriter<File>,
    line: String,
}

impl TableFile {
    fn create<T: NexmarkTable>(dir: &Path) -> std::io::Result<TableFile> {
        let path = dir.join(T::FILE_NAME);
        let file = File::create(&path).map_err(|error| annotate(&path, error))?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        writeln!(writer, "{}", T::COLUMNS.join(","))?;
        Ok(TableFile {
            writer,
            line: String::with_capacity(1024),
        })
    }
}

fn annotate(path: &Path, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("cannot write '{}': {error}", path.display()),
    )
}

fn person_line(line: &mut String, person: &Person) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{},{},{},{},{},{},",
        person.id, person.name, person.email_address, person.credit_card, person.city, person.state
    );
    write_timestamp_ms(line, person.date_time);
    line.push(',');
    line.push_str(&person.extra);
    line.push('\n');
}

fn auction_line(line: &mut String, auction: &Auction) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{},{},{},{},{},",
        auction.id, auction.item_name, auction.description, auction.initial_bid, auction.reserve
    );
    write_timestamp_ms(line, auction.date_time);
    line.push(',');
    write_timestamp_ms(line, auction.expires);
    let _ = writeln!(
        line,
        ",{},{},{}",
        auction.seller, auction.category, auction.extra
    );
}

fn bid_line(line: &mut String, bid: &Bid) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{},{},{},{},{},",
        bid.auction, bid.bidder, bid.price, bid.channel, bid.url
    );
    write_timestamp_ms(line, bid.date_time);
    line.push(',');
    line.push_str(&bid.extra);
    line.push('\n');
}

/// Writes every event of `model` into `dir` (created if missing): `person.csv`,
/// `auction.csv`, `bid.csv` and `manifest.json` (counts and parameters).
pub fn write_files(model: &Arc<NexmarkModel>, dir: &Path) -> std::io::Result<FileCounts> {
    std::fs::create_dir_all(dir).map_err(|error| annotate(dir, error))?;
    let mut persons = TableFile::create::<Person>(dir)?;
    let mut auctions = TableFile::create::<Auction>(dir)?;
    let mut bids = TableFile::create::<Bid>(dir)?;
    let mut counts = FileCounts::default();
    for event in model.events() {
        let file = match &event {
            Event::Person(person) => {
                counts.persons += 1;
                person_line(&mut persons.line, person);
                &mut persons
            }
            Event::Auction(auction) => {
                counts.auctions += 1;
                auction_line(&mut auctions.line, auction);
                &mut auctions
            }
            Event::Bid(bid) => {
                counts.bids += 1;
                bid_line(&mut bids.line, bid);
                &mut bids
            }
        };
        file.writer.write_all(file.line.as_bytes())?;
        file.line.clear();
    }
    for file in [persons, auctions, bids] {
        file.writer.into_inner().map_err(|e| e.into_error())?;
    }
    let config = model.config();
    let (first, last) = if config.events == 0 {
        ("null".to_string(), "null".to_string())
    } else {
        (
            format!("\"{}\"", format_timestamp_ms(model.timestamp_ms(0))),
            format!(
                "\"{}\"",
                format_timestamp_ms(model.timestamp_ms(config.events - 1))
            ),
        )
    };
    let manifest = format!(
        "{{\n \"generator\": \"eddy nexmark generate\",\n \"events\": {},\n \"seed\": {},\n \
         \"rate_events_per_s\": {:?},\n \"base_time\": \"2015-07-15 00:00:00.000\",\n \
         \"first_ts\": {first},\n \"last_ts\": {last},\n \"persons\": {},\n \"auctions\": {},\n \
         \"bids\": {}\n}}\n",
        config.events, config.seed, config.event_rate, counts.persons, counts.auctions, counts.bids
    );
    let path = dir.join("manifest.json");
    std::fs::write(&path, manifest).map_err(|error| annotate(&path, error))?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::generator::GeneratorConfig;

    /// `tests/data/nexmark/gen/` was written by the Flink peer harness's
    /// `gen_nexmark.py --events 12000 --seed 42 --rate 203`: an independent reference.
    #[test]
    fn the_files_equal_gen_nexmark_py_byte_for_byte() {
        let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/nexmark/gen");
        let model = NexmarkModel::new(GeneratorConfig {
            events: 12_000,
            seed: 42,
            event_rate: 203.0,
            throttle: false,
        })
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let counts = write_files(&model, out.path()).unwrap();
        assert_eq!(
            counts,
            FileCounts {
                persons: 240,
                auctions: 720,
                bids: 11_040
            }
        );
        for file in ["person.csv", "auction.csv", "bid.csv"] {
            let expected = std::fs::read_to_string(reference.join(file)).unwrap();
            let actual = std::fs::read_to_string(out.path().join(file)).unwrap();
            if expected != actual {
                let line = expected
                    .lines()
                    .zip(actual.lines())
                    .position(|(e, a)| e != a);
                panic!(
                    "{file} differs from gen_nexmark.py's at line {:?}: {:?} / {:?}",
                    line.map(|l| l + 1),
                    line.and_then(|l| expected.lines().nth(l)),
                    line.and_then(|l| actual.lines().nth(l)),
                );
            }
        }
        let manifest = std::fs::read_to_string(out.path().join("manifest.json")).unwrap();
        assert!(manifest.contains("\"last_ts\": \"2015-07-15 00:00:59.108\""));
    }

    #[test]
    fn an_unwritable_folder_is_named() {
        let model = NexmarkModel::new(GeneratorConfig {
            events: 10,
            ..GeneratorConfig::default()
        })
        .unwrap();
        let error = write_files(&model, Path::new("/proc/eddy-no/such")).unwrap_err();
        assert!(error.to_string().contains("/proc/eddy-no/such"), "{error}");
    }
}
