//! `copy`: moves records from a source to a sink, both named by URI — the smallest
//! useful pipeline.
//!
//! ```text
//! source (parallel) ──▶ sink                          (folder of part files, blackhole)
//! source (parallel) ══rebalance══▶ sink (1 subtask)   (one file, print)
//! ```
//!
//! Sources: `file:///PATH?format=csv|jsonl|lines&header=true|false&watch=true|false`
//! (a file, a folder or a glob read once; `watch=true`: a folder watched for new files,
//! unbounded) and `nexmark://?events=N&rate=R&seed=S` (the Nexmark generator: persons,
//! auctions and bids as CSV rows with their table's columns). Sinks: `print:`
//! (stdout), `blackhole:`, `file:///PATH` (one file) and `file:///DIR/` (a trailing
//! slash: a folder of part files, each renamed into place when complete; exactly-once
//! part files wait for checkpoints). `print:` and `file:` take `?format=` too.
//!
//! The format of a side is its URI's `format`, else `--format`, else the file name's
//! extension (`.csv`, `.jsonl`, `.ndjson`, `.txt`, `.log`); a sink without any of these
//! writes the source's format. Records are converted on the way (a CSV row with a header
//! becomes a JSON object by column name, a JSON value becomes a CSV row of its values).
//! A record that does not parse is handled by `--on-bad-record`.
//!
//! Kafka: `kafka://HOST:PORT/TOPIC?group=G&start=earliest|latest|committed|<millis>&
//! format=F&bounded=true` as a source (a topic name with `*` or `?` is a pattern; the
//! value of each record is one record in the format; `bounded=true` stops at the end
//! offsets found at start-up), and `kafka://HOST:PORT/TOPIC?delivery=none|at-least-once|
//! exactly-once&format=F&transactional_id_prefix=P` as a sink (the topic must exist;
//! the transactional ids are `P-<subtask>`, by default `copy-write_kafka-TOPIC-<subtask>`:
//! two jobs running at once must not share them; with `exactly-once` and no
//! checkpoints the records are committed at the end of the input). Both default to the
//! format `lines` when nothing else names one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::prelude::*;
use eddy_connectors::files::{
    BadRecordPolicy, DeadLetterFile, FileError, FileSink, FileSinkSettings, FileSource,
    FileSourceMetrics, Format, ReadSettings, Record, RecordEncoder, SinkTarget, StringRecord,
    WatchSettings, WatchedFolderSource,
};
use eddy_connectors::kafka::{
    Delivery, KafkaClientSettings, KafkaSink, KafkaSinkSettings, KafkaSource, KafkaSourceMetrics,
    KafkaSourceSettings, StartPosition, Topics,
};
use eddy_connectors::nexmark::{
    format_timestamp_ms, Auction, Bid, GeneratorConfig, NexmarkGenerator, NexmarkModel,
    NexmarkTable, Person, DEFAULT_EVENT_RATE,
};

/// Part files are completed at this size (128 MiB).
const PART_BYTES: u64 = 128 << 20;
/// File names in flight from a folder watcher to its source task.
const WATCH_QUEUE_CAPACITY: usize = 4096;

/// Why a copy job could not be built (the user's fault: fix the URI or flag).
#[derive(Debug)]
pub enum CopyError {
    /// A URI that cannot be used.
    BadUri {
        /// `source` or `sink`.
        side: &'static str,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A flag that cannot be used.
    BadFlag(String),
    /// A file or folder the job needs is missing or cannot be created.
    Files(FileError),
}

// Written out rather than derived: the facade crate does not depend on thiserror.
impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::BadUri { side, uri, reason } => {
                write!(f, "bad {side} URI '{uri}': {reason}")
            }
            CopyError::BadFlag(message) => f.write_str(message),
            CopyError::Files(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CopyError::Files(error) => Some(error),
            _ => None,
        }
    }
}

impl From<FileError> for CopyError {
    fn from(error: FileError) -> Self {
        CopyError::Files(error)
    }
}

/// Where records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceUri {
    /// Files: a file, a folder or a glob; `watch`: a watched folder.
    File {
        /// The path.
        path: PathBuf,
        /// The `format` option.
        format: Option<Format>,
        /// The `header` option (CSV).
        header: Option<bool>,
        /// Watch the folder for new files (unbounded).
        watch: bool,
    },
    /// A Kafka topic (or a pattern of topics).
    Kafka {
        /// `host:port` of the bootstrap broker.
        bootstrap: String,
        /// The topic, or a glob of topics.
        topic: String,
        /// The consumer group (committed offsets).
        group: Option<String>,
        /// Where to start.
        start: StartPosition,
        /// The `format` option.
        format: Option<Format>,
        /// Stop at the end offsets found at start-up.
        bounded: bool,
    },
    /// The Nexmark generator.
    Nexmark {
        /// Number of events.
        events: u64,
        /// Events per second (throttled), or unlimited.
        rate: Option<f64>,
        /// Seed of the random numbers.
        seed: u64,
    },
}

/// Where records go.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkUri {
    /// One file, or a folder of part files (`folder`: the URI ends with `/`).
    File {
        /// The path.
        path: PathBuf,
        /// A folder of part files.
        folder: bool,
        /// The `format` option.
        format: Option<Format>,
        /// The `header` option (CSV).
        header: Option<bool>,
    },
    /// Standard output.
    Print {
        /// The `format` option.
        format: Option<Format>,
    },
    /// Records are dropped (counted by the engine's metrics).
    Blackhole,
    /// A Kafka topic.
    Kafka {
        /// `host:port` of the bootstrap broker.
        bootstrap: String,
        /// The topic (it must exist).
        topic: String,
        /// The delivery guarantee.
        delivery: Delivery,
        /// The `format` option.
        format: Option<Format>,
        /// The `transactional_id_prefix` option (exactly-once).
        transactional_id_prefix: Option<String>,
    },
}

/// The `--on-bad-record` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBadRecord {
    /// Fail the job.
    Fail,
    /// Skip and count.
    SkipAndCount,
    /// Write to the dead-letter file (`--dead-letters`).
    DeadLetter,
}

impl std::str::FromStr for OnBadRecord {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "fail" => Ok(OnBadRecord::Fail),
            "skip-and-count" => Ok(OnBadRecord::SkipAndCount),
            "dead-letter" => Ok(OnBadRecord::DeadLetter),
            other => Err(format!(
                "unknown policy '{other}': expected dead-letter, fail or skip-and-count"
            )),
        }
    }
}

/// Everything a copy job needs.
#[derive(Debug, Clone)]
pub struct CopySpec {
    /// The source.
    pub source: SourceUri,
    /// The sink.
    pub sink: SinkUri,
    /// `--format`: the format of a side whose URI names none.
    pub format: Option<Format>,
    /// `--on-bad-record`.
    pub on_bad_record: OnBadRecord,
    /// `--dead-letters`: the dead-letter file (with `dead-letter`).
    pub dead_letters: Option<PathBuf>,
    /// Where a `print:` sink shows its records instead of standard output (the
    /// daemon's result preview).
    pub preview: Option<Arc<crate::jobs::preview::Preview>>,
}

/// What a built copy job reports while and after it runs.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// The file source's counters (none for the generator).
    pub source_metrics: Option<FileSourceMetrics>,
    /// The Kafka source's counters.
    pub kafka_metrics: Option<KafkaSourceMetrics>,
    /// The dead-letter file, if any.
    pub dead_letters: Option<PathBuf>,
}

impl CopyReport {
    /// Records that did not parse, so far.
    pub fn bad_records(&self) -> u64 {
        self.source_metrics
            .as_ref()
            .map_or(0, FileSourceMetrics::bad_records)
            + self
                .kafka_metrics
                .as_ref()
                .map_or(0, KafkaSourceMetrics::bad_records)
    }

    /// Logs the counts (a warning when records did not parse).
    pub fn log_summary(&self) {
        if let Some(metrics) = &self.kafka_metrics {
            if metrics.bad_records() > 0 {
                tracing::warn!(
                    records = metrics.records_out(),
                    bad_records = metrics.bad_records(),
                    "copy: some Kafka records did not parse"
                );
            } else {
                tracing::info!(
                    records = metrics.records_out(),
                    "copy: all Kafka records parsed"
                );
            }
        }
        let Some(metrics) = &self.source_metrics else {
            return;
        };
        if metrics.bad_records() > 0 {
            tracing::warn!(
                records = metrics.records_out(),
                bad_records = metrics.bad_records(),
                files = metrics.files_done(),
                dead_letters = %self.dead_letters.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
                "copy: some records did not parse"
            );
        } else {
            tracing::info!(
                records = metrics.records_out(),
                files = metrics.files_done(),
                "copy: all records parsed"
            );
        }
    }
}

/// Splits `scheme:rest?query` options into pairs, rejecting unknown or repeated keys.
fn options<'a>(
    query: Option<&'a str>,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("option '{pair}' has no value (expected key=value)"))?;
        if !allowed.contains(&key) {
            return Err(format!(
                "unknown option '{key}' (expected one of: {})",
                allowed.join(", ")
            ));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("option '{key}' is given twice"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn option<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<Option<bool>, String> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(format!("option {key}='{other}': expected true or false")),
    }
}

fn parse_format(value: Option<&str>) -> Result<Option<Format>, String> {
    value
        .map(|v| v.parse::<Format>().map_err(|e| e.to_string()))
        .transpose()
}

/// Decodes `%XX` escapes of a URI path.
fn percent_decode(text: &str) -> Result<PathBuf, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in '{text}' (expected %XX)"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// The path and query of a `file:///PATH?query` URI.
fn file_uri(rest: &str) -> Result<(PathBuf, bool, Option<&str>), String> {
    let rest = rest
        .strip_prefix("//")
        .ok_or("expected file:///ABSOLUTE/PATH")?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if !path.starts_with('/') {
        return Err("expected file:///ABSOLUTE/PATH (three slashes, an absolute path)".into());
    }
    if path == "/" {
        return Err("the path is the root folder".into());
    }
    Ok((percent_decode(path)?, path.ends_with('/'), query))
}

/// The `host:port`, topic and query of `kafka://HOST:PORT/TOPIC?query`.
fn kafka_uri(rest: &str) -> Result<(String, String, Option<&str>), String> {
    let rest = rest
        .strip_prefix("//")
        .ok_or("expected kafka://HOST:PORT/TOPIC")?;
    let (address, rest) = rest
        .split_once('/')
        .ok_or("expected kafka://HOST:PORT/TOPIC (no topic)")?;
    let (topic, query) = match rest.split_once('?') {
        Some((topic, query)) => (topic, Some(query)),
        None => (rest, None),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("'{address}' has no port (expected HOST:PORT)"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("'{address}' is not HOST:PORT"));
    }
    let topic = percent_decode(topic)?
        .into_os_string()
        .into_string()
        .map_err(|_| "the topic is not UTF-8".to_string())?;
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?');
    if topic.is_empty() || !topic.chars().all(legal) {
        return Err(format!(
            "bad topic '{topic}' (letters, digits, '.', '_', '-'; a source may use * and ?)"
        ));
    }
    Ok((address.to_string(), topic, query))
}

/// Parses a source URI.
pub fn parse_source(uri: &str) -> Result<SourceUri, CopyError> {
    let bad = |reason: String| CopyError::BadUri {
        side: "source",
        uri: uri.to_string(),
        reason,
    };
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| bad("expected file:///PATH or nexmark://?events=N".into()))?;
    match scheme {
        "kafka" => {
            let (bootstrap, topic, query) = kafka_uri(rest).map_err(bad)?;
            let pairs = options(query, &["group", "start", "format", "bounded"]).map_err(bad)?;
            let group = option(&pairs, "group").map(str::to_string);
            let start = match option(&pairs, "start").unwrap_or("earliest") {
                "earliest" => StartPosition::Earliest,
                "latest" => StartPosition::Latest,
                "committed" if group.is_some() => StartPosition::Committed,
                "committed" => return Err(bad("start=committed needs group=G".into())),
                millis => StartPosition::Timestamp(millis.parse::<i64>().ok().filter(|m| *m >= 0).ok_or_else(
                    || bad(format!("start '{millis}': expected earliest, latest, committed or ms since the epoch")),
                )?),
            };
            Ok(SourceUri::Kafka {
                bootstrap,
                topic,
                group,
                start,
                format: parse_format(option(&pairs, "format")).map_err(bad)?,
                bounded: parse_bool("bounded", option(&pairs, "bounded"))
                    .map_err(bad)?
                    .unwrap_or(false),
            })
        }
        "file" => {
            let (path, _, query) = file_uri(rest).map_err(bad)?;
            let pairs = options(query, &["format", "header", "watch"]).map_err(bad)?;
            Ok(SourceUri::File {
                path,
                format: parse_format(option(&pairs, "format")).map_err(bad)?,
                header: parse_bool("header", option(&pairs, "header")).map_err(bad)?,
                watch: parse_bool("watch", option(&pairs, "watch"))
                    .map_err(bad)?
                    .unwrap_or(false),
            })
        }
        "nexmark" => {
            let query = rest
                .trim_start_matches("//")
                .strip_prefix('?')
                .or(Some(rest.trim_start_matches("//")).filter(|r| r.is_empty()))
                .ok_or_else(|| bad("expected nexmark://?events=N&rate=R".into()))?;
            let pairs = options(Some(query), &["events", "rate", "seed"]).map_err(bad)?;
            let events = option(&pairs, "events")
                .ok_or_else(|| bad("events=N is required".into()))?
                .parse::<u64>()
                .map_err(|e| bad(format!("events: {e}")))?;
            let rate = option(&pairs, "rate")
                .map(|r| match r.parse::<f64>() {
                    Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
                    _ => Err(bad(format!("rate '{r}' is not a positive number"))),
                })
                .transpose()?;
            let seed = option(&pairs, "seed")
                .map(|s| s.parse::<u64>().map_err(|e| bad(format!("seed: {e}"))))
                .transpose()?
                .unwrap_or(42);
            Ok(SourceUri::Nexmark { events, rate, seed })
        }
        other => Err(bad(format!(
            "unknown scheme '{other}' (expected file, kafka or nexmark)"
        ))),
    }
}

/// Parses a sink URI.
pub fn parse_sink(uri: &str) -> Result<SinkUri, CopyError> {
    let bad = |reason: String| CopyError::BadUri {
        side: "sink",
        uri: uri.to_string(),
        reason,
    };
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| bad("expected file:///PATH, print: or blackhole:".into()))?;
    match scheme {
        "file" => {
            let (path, folder, query) = file_uri(rest).map_err(bad)?;
            let pairs = options(query, &["format", "header"]).map_err(bad)?;
            Ok(SinkUri::File {
                path,
                folder,
                format: parse_format(option(&pairs, "format")).map_err(bad)?,
                header: parse_bool("header", option(&pairs, "header")).map_err(bad)?,
            })
        }
        "print" => {
            let query = match rest {
                "" => None,
                _ => Some(
                    rest.strip_prefix('?')
                        .ok_or_else(|| bad("expected print: or print:?format=F".into()))?,
                ),
            };
            let pairs = options(query, &["format"]).map_err(bad)?;
            Ok(SinkUri::Print {
                format: parse_format(option(&pairs, "format")).map_err(bad)?,
            })
        }
        "kafka" => {
            let (bootstrap, topic, query) = kafka_uri(rest).map_err(bad)?;
            if topic.contains(['*', '?']) {
                return Err(bad("a sink writes one topic (no * or ?)".into()));
            }
            let pairs =
                options(query, &["delivery", "format", "transactional_id_prefix"]).map_err(bad)?;
            Ok(SinkUri::Kafka {
                bootstrap,
                topic,
                delivery: option(&pairs, "delivery")
                    .unwrap_or("at-least-once")
                    .parse()
                    .map_err(|e: eddy_connectors::kafka::KafkaError| bad(e.to_string()))?,
                format: parse_format(option(&pairs, "format")).map_err(bad)?,
                transactional_id_prefix: option(&pairs, "transactional_id_prefix")
                    .map(str::to_string),
            })
        }
        "blackhole" if rest.is_empty() => Ok(SinkUri::Blackhole),
        "blackhole" => Err(bad("blackhole: takes no options".into())),
        other => Err(bad(format!(
            "unknown scheme '{other}' (expected file, kafka, print or blackhole)"
        ))),
    }
}

/// Applies a `header` option to a CSV format.
fn with_header(format: Format, header: Option<bool>) -> Format {
    match (format, header) {
        (Format::Csv { .. }, Some(header)) => Format::Csv { header },
        (format, _) => format,
    }
}

/// The policy of `--on-bad-record` and `--dead-letters` (creating the dead-letter
/// file now, so a path that cannot be written is reported before the job starts); a
/// dead-letter file without `dead-letter`, or the other way round, is a usage error.
pub fn bad_record_policy(
    on_bad_record: OnBadRecord,
    dead_letters: Option<&Path>,
) -> Result<BadRecordPolicy, CopyError> {
    Ok(match (on_bad_record, dead_letters) {
        (OnBadRecord::DeadLetter, Some(path)) => {
            BadRecordPolicy::DeadLetter(DeadLetterFile::create(path)?)
        }
        (OnBadRecord::DeadLetter, None) => {
            return Err(CopyError::BadFlag(
                "--on-bad-record dead-letter needs --dead-letters FILE".into(),
            ))
        }
        (_, Some(_)) => {
            return Err(CopyError::BadFlag(
                "--dead-letters needs --on-bad-record dead-letter".into(),
            ))
        }
        (OnBadRecord::Fail, None) => BadRecordPolicy::Fail,
        (OnBadRecord::SkipAndCount, None) => BadRecordPolicy::SkipAndCount,
    })
}

/// Adds the copy job described by `spec` to `env`. Checks what can be checked before
/// the job runs: the source exists, the dead-letter file can be created.
pub fn build(env: &Env, spec: &CopySpec) -> Result<CopyReport, CopyError> {
    let policy = bad_record_policy(spec.on_bad_record, spec.dead_letters.as_deref())?;
    let mut kafka_metrics = None;
    let (stream, source_format, source_metrics) = match &spec.source {
        SourceUri::Kafka {
            bootstrap,
            topic,
            group,
            start,
            format,
            bounded,
        } => {
            let format = format.or(spec.format).unwrap_or(Format::Lines);
            let topics = if topic.contains(['*', '?']) {
                Topics::Pattern(topic.clone())
            } else {
                Topics::Names(vec![topic.clone()])
            };
            let mut settings = KafkaSourceSettings::new(
                KafkaClientSettings::new(bootstrap.clone()),
                topics,
                format,
            );
            settings.group = group.clone();
            settings.start = *start;
            settings.bounded = *bounded;
            settings.on_bad_record = policy;
            settings.clock = Arc::clone(&env.config().clock);
            let source = KafkaSource::<Record>::new(settings);
            kafka_metrics = Some(source.metrics());
            let boundedness = if *bounded {
                Boundedness::Bounded
            } else {
                Boundedness::Unbounded
            };
            let stream = env.add_source("read_kafka", source, boundedness);
            (stream, format, None)
        }
        SourceUri::File {
            path,
            format,
            header,
            watch,
        } => {
            let format = format
                .or(spec.format)
                .or_else(|| Format::from_extension(path))
                .map(|f| with_header(f, *header))
                .ok_or_else(|| CopyError::BadUri {
                    side: "source",
                    uri: format!("file://{}", path.display()),
                    reason: "no format: add ?format=csv|jsonl|lines or --format".into(),
                })?;
            let read = ReadSettings {
                format,
                on_bad_record: policy,
            };
            if *watch {
                let source = WatchedFolderSource::new(
                    path,
                    WatchSettings {
                        read,
                        queue_capacity: WATCH_QUEUE_CAPACITY,
                    },
                );
                if !path.is_dir() {
                    return Err(CopyError::BadUri {
                        side: "source",
                        uri: format!("file://{}", path.display()),
                        reason: "watch=true needs an existing folder".into(),
                    });
                }
                let metrics = source.metrics();
                let stream = env.add_source("watch_folder", source, Boundedness::Unbounded);
                (stream, format, Some(metrics))
            } else {
                // Lists the files now, so a missing path is a usage error.
                eddy_connectors::files::listing::expand(path)?;
                let source = FileSource::new(path, read);
                let metrics = source.metrics();
                let stream = env.add_source("read_files", source, Boundedness::Bounded);
                (stream, format, Some(metrics))
            }
        }
        SourceUri::Nexmark { events, rate, seed } => {
            let model = NexmarkModel::new(GeneratorConfig {
                events: *events,
                seed: *seed,
                event_rate: rate.unwrap_or(DEFAULT_EVENT_RATE),
                throttle: rate.is_some(),
            })
            .map_err(CopyError::BadFlag)?;
            (
                nexmark_records(env, &model),
                Format::Csv { header: true },
                None,
            )
        }
    };
    let sink_format = |format: Option<Format>, header: Option<bool>, path: Option<&Path>| {
        let format = format
            .or(spec.format)
            .or_else(|| path.and_then(Format::from_extension))
            .unwrap_or(source_format);
        with_header(format, header)
    };
    match &spec.sink {
        SinkUri::File {
            path,
            folder,
            format,
            header,
        } => {
            let (target, file_name) = if *folder {
                (SinkTarget::Folder(path.clone()), None)
            } else {
                (SinkTarget::File(path.clone()), Some(path.as_path()))
            };
            let settings = FileSinkSettings {
                target,
                format: sink_format(*format, *header, file_name),
                part_bytes: PART_BYTES,
                exactly_once: *folder && env.config().checkpoint.mode.enabled(),
            };
            check_writable(path, *folder)?;
            if *folder {
                stream.sink(FileSink::new(settings)).name("write_files");
            } else {
                stream
                    .rebalance()
                    .sink(FileSink::new(settings))
                    .name("write_file")
                    .set_parallelism(1);
            }
        }
        SinkUri::Print { format } => match &spec.preview {
            Some(preview) => {
                stream
                    .rebalance()
                    .sink(crate::jobs::preview::PreviewSink::new(Arc::clone(preview)))
                    .name("print")
                    .set_parallelism(1);
            }
            None => {
                stream
                    .rebalance()
                    .sink(PrintSink::new(sink_format(*format, None, None)))
                    .name("print")
                    .set_parallelism(1);
            }
        },
        SinkUri::Blackhole => {
            stream
                .sink_fn(|record: Record| drop(record))
                .name("blackhole");
        }
        SinkUri::Kafka {
            bootstrap,
            topic,
            delivery,
            format,
            transactional_id_prefix,
        } => {
            let mut settings = KafkaSinkSettings::new(
                KafkaClientSettings::new(bootstrap.clone()),
                topic.clone(),
                *delivery,
                format.or(spec.format).unwrap_or(match spec.source {
                    SourceUri::Kafka { .. } => source_format,
                    _ => Format::Lines,
                }),
            );
            settings.clock = Arc::clone(&env.config().clock);
            settings.transactional_id_prefix = transactional_id_prefix.clone();
            let checkpoint = &env.config().checkpoint;
            settings.checkpoint_interval = checkpoint.mode.enabled().then_some(checkpoint.interval);
            settings.abort_before_commit = std::env::var("EDDY_TEST_ABORT_BEFORE_COMMIT")
                .ok()
                .and_then(|v| v.parse().ok());
            stream.sink(KafkaSink::new(settings)).name("write_kafka");
        }
    }
    Ok(CopyReport {
        source_metrics,
        kafka_metrics,
        dead_letters: spec.dead_letters.clone(),
    })
}

/// Checks before the job runs that the sink's folder exists or can be created.
fn check_writable(path: &Path, folder: bool) -> Result<(), CopyError> {
    let dir = if folder {
        path
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    std::fs::create_dir_all(dir).map_err(|e| FileError::io("cannot create folder", dir, e))?;
    Ok(())
}

/// The generator's three tables as CSV rows with their columns, in one stream.
fn nexmark_records(env: &Env, model: &Arc<NexmarkModel>) -> DataStream<Record> {
    let clock = Arc::clone(&env.config().clock);
    let header = |columns: &[&str]| Arc::new(StringRecord::from(columns.to_vec()));
    let (person_header, auction_header, bid_header) = (
        header(Person::COLUMNS),
        header(Auction::COLUMNS),
        header(Bid::COLUMNS),
    );
    let persons = env
        .add_source(
            "nexmark_person",
            NexmarkGenerator::<Person>::new(Arc::clone(model), Arc::clone(&clock)),
            Boundedness::Bounded,
        )
        .map(move |p: Person| Record::Row {
            fields: StringRecord::from(vec![
                p.id.to_string(),
                p.name,
                p.email_address,
                p.credit_card,
                p.city,
                p.state,
                format_timestamp_ms(p.date_time),
                p.extra,
            ]),
            header: Some(Arc::clone(&person_header)),
        });
    let auctions = env
        .add_source(
            "nexmark_auction",
            NexmarkGenerator::<Auction>::new(Arc::clone(model), Arc::clone(&clock)),
            Boundedness::Bounded,
        )
        .map(move |a: Auction| Record::Row {
            fields: StringRecord::from(vec![
                a.id.to_string(),
                a.item_name,
                a.description,
                a.initial_bid.to_string(),
                a.reserve.to_string(),
                format_timestamp_ms(a.date_time),
                format_timestamp_ms(a.expires),
                a.seller.to_string(),
                a.category.to_string(),
                a.extra,
            ]),
            header: Some(Arc::clone(&auction_header)),
        });
    let bids = env
        .add_source(
            "nexmark_bid",
            NexmarkGenerator::<Bid>::new(Arc::clone(model), clock),
            Boundedness::Bounded,
        )
        .map(move |b: Bid| Record::Row {
            fields: StringRecord::from(vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                b.channel.to_string(),
                b.url.to_string(),
                format_timestamp_ms(b.date_time),
                b.extra.to_string(),
            ]),
            header: Some(Arc::clone(&bid_header)),
        });
    persons.union(&auctions).union(&bids)
}

/// Writes records to standard output in a format, a buffer at a time (flushed after
/// each buffer, so a reader sees records as they come). A debugging sink: a blocked
/// stdout blocks its executor.
#[derive(Debug)]
pub struct PrintSink {
    encoder: RecordEncoder,
    scratch: Vec<u8>,
}

impl Clone for PrintSink {
    fn clone(&self) -> Self {
        PrintSink::new(self.encoder.format())
    }
}

impl PrintSink {
    /// A sink printing in `format`.
    pub fn new(format: Format) -> Self {
        PrintSink {
            encoder: RecordEncoder::new(format),
            scratch: Vec::new(),
        }
    }
}

impl Sink<Record> for PrintSink {
    fn write(&mut self, record: Record) -> Result<(), ConnectorError> {
        let mut batch = Batch::new();
        batch.push(record);
        self.write_batch(&mut batch)
    }

    fn write_batch(&mut self, batch: &mut Batch<Record>) -> Result<(), ConnectorError> {
        use std::io::Write;
        self.scratch.clear();
        for record in batch.drain_values() {
            self.encoder.encode(&record, &mut self.scratch)?;
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&self.scratch)
            .and_then(|()| stdout.flush())
            .map_err(|e| ConnectorError::with_source("cannot write to stdout", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_uris_parse() {
        assert_eq!(
            parse_source("file:///data/in%20put/*.csv?format=csv&header=false").unwrap(),
            SourceUri::File {
                path: "/data/in put/*.csv".into(),
                format: Some(Format::Csv { header: true }),
                header: Some(false),
                watch: false,
            }
        );
        assert_eq!(
            parse_source("file:///in/?watch=true").unwrap(),
            SourceUri::File {
                path: "/in/".into(),
                format: None,
                header: None,
                watch: true,
            }
        );
        assert_eq!(
            parse_source("nexmark://?events=100&rate=50").unwrap(),
            SourceUri::Nexmark {
                events: 100,
                rate: Some(50.0),
                seed: 42
            }
        );
    }

    #[test]
    fn sink_uris_parse() {
        assert_eq!(
            parse_sink("file:///out/?format=jsonl").unwrap(),
            SinkUri::File {
                path: "/out/".into(),
                folder: true,
                format: Some(Format::JsonLines),
                header: None,
            }
        );
        assert_eq!(
            parse_sink("print:").unwrap(),
            SinkUri::Print { format: None }
        );
        assert_eq!(
            parse_sink("print:?format=csv").unwrap(),
            SinkUri::Print {
                format: Some(Format::Csv { header: true })
            }
        );
        assert_eq!(parse_sink("blackhole:").unwrap(), SinkUri::Blackhole);
        assert_eq!(
            parse_sink("kafka://127.0.0.1:9092/out?delivery=exactly-once&format=jsonl").unwrap(),
            SinkUri::Kafka {
                bootstrap: "127.0.0.1:9092".into(),
                topic: "out".into(),
                delivery: Delivery::ExactlyOnce,
                format: Some(Format::JsonLines),
                transactional_id_prefix: None,
            }
        );
    }

    #[test]
    fn kafka_source_uris_parse() {
        assert_eq!(
            parse_source("kafka://localhost:9092/in-*?group=g&start=committed&bounded=true")
                .unwrap(),
            SourceUri::Kafka {
                bootstrap: "localhost:9092".into(),
                topic: "in-*".into(),
                group: Some("g".into()),
                start: StartPosition::Committed,
                format: None,
                bounded: true,
            }
        );
        assert_eq!(
            parse_source("kafka://h:1/t?start=1700000000000").unwrap(),
            SourceUri::Kafka {
                bootstrap: "h:1".into(),
                topic: "t".into(),
                group: None,
                start: StartPosition::Timestamp(1_700_000_000_000),
                format: None,
                bounded: false,
            }
        );
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (uri, expected) in [
            ("kafka://h/t", "has no port"),
            ("kafka://h:0/t", "not HOST:PORT"),
            ("kafka://h:9092/", "bad topic"),
            ("kafka://h:9092/t?start=committed", "needs group"),
            ("kafka://h:9092/t?start=yesterday", "start 'yesterday'"),
            ("file://relative/path", "ABSOLUTE"),
            ("file:///x?format=xml", "unknown format 'xml'"),
            ("file:///x?watch=yes", "expected true or false"),
            ("file:///x?colour=red", "unknown option 'colour'"),
            ("file:///x?format=csv&format=csv", "given twice"),
            ("file:///x%zz", "bad escape"),
            ("nexmark://?rate=5", "events=N is required"),
            ("nexmark://?events=-3", "events"),
            ("nexmark://?events=3&rate=0", "not a positive number"),
            ("nothing", "expected file:///PATH"),
        ] {
            let error = parse_source(uri).unwrap_err().to_string();
            assert!(error.contains(expected), "{uri}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        for (uri, expected) in [
            ("blackhole:?x=1", "takes no options"),
            ("print:format=csv", "expected print:"),
            ("nexmark://?events=3", "unknown scheme 'nexmark'"),
            (
                "kafka://h:9092/t?delivery=twice",
                "unknown delivery 'twice'",
            ),
            ("kafka://h:9092/t*", "one topic"),
        ] {
            let error = parse_sink(uri).unwrap_err().to_string();
            assert!(error.contains(expected), "{uri}: {error}");
        }
    }

    #[test]
    fn a_csv_folder_is_copied_to_json_lines_with_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        std::fs::write(input.join("a.csv"), "id,name\n1,x\n2\n3,z\n").unwrap();
        std::fs::write(input.join("b.csv"), "id,name\n4,\"w,v\"\n").unwrap();
        let output = dir.path().join("out.jsonl");
        let env = Env::new(JobConfig {
            parallelism: Some(2),
            ..JobConfig::default()
        });
        let report = build(
            &env,
            &CopySpec {
                source: parse_source(&format!("file://{}?format=csv", input.display())).unwrap(),
                sink: parse_sink(&format!("file://{}", output.display())).unwrap(),
                format: None,
                on_bad_record: OnBadRecord::DeadLetter,
                dead_letters: Some(dir.path().join("dead.jsonl")),
                preview: None,
            },
        )
        .unwrap();
        env.execute().unwrap();
        let mut lines: Vec<String> = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                r#"{"id":"1","name":"x"}"#,
                r#"{"id":"3","name":"z"}"#,
                r#"{"id":"4","name":"w,v"}"#
            ]
        );
        assert_eq!(report.bad_records(), 1);
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert!(
            dead.contains("\"line\":3") && dead.contains("a.csv"),
            "{dead}"
        );
    }
}
