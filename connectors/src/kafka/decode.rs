//! How a Kafka record's value becomes an eddy record: parsed in the source's
//! [`Format`] (a value is one CSV row, one JSON value, or one line), and what a source
//! emits ([`FromKafka`]: the parsed [`Record`] alone, or a [`KafkaRecord`] with the key,
//! topic, partition, offset and timestamp). Values that do not parse are bad records
//! ([`KafkaDeadLetter`]), handled by the source's [`BadRecordPolicy`].
//!
//! [`BadRecordPolicy`]: crate::files::BadRecordPolicy

use std::sync::Arc;

use eddy_engine::prelude::Timestamp;
use serde::Serialize;

use crate::files::{Format, Record};

/// A Kafka record with its metadata and its value parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRecord {
    /// The key's bytes, if any.
    pub key: Option<Vec<u8>>,
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch), if it has one.
    pub timestamp: Option<i64>,
    /// The value, parsed in the source's format.
    pub value: Record,
}

/// Where a record came from, handed to [`FromKafka::from_kafka`].
#[derive(Debug)]
pub struct KafkaMeta<'a> {
    /// The key's bytes, if any (owned: taken without a copy).
    pub key: Option<Vec<u8>>,
    /// The topic.
    pub topic: &'a Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (ms since the epoch), if any.
    pub timestamp: Option<Timestamp>,
}

/// What a Kafka source emits, built from a parsed value and its metadata.
pub trait FromKafka: Send + 'static {
    /// Builds the emitted record.
    fn from_kafka(value: Record, meta: KafkaMeta<'_>) -> Self;
}

/// The parsed value alone (the `copy` job's records); the key is dropped.
impl FromKafka for Record {
    fn from_kafka(value: Record, _meta: KafkaMeta<'_>) -> Self {
        value
    }
}

impl FromKafka for KafkaRecord {
    fn from_kafka(value: Record, meta: KafkaMeta<'_>) -> Self {
        KafkaRecord {
            key: meta.key,
            topic: Arc::clone(meta.topic),
            partition: meta.partition,
            offset: meta.offset,
            timestamp: meta.timestamp,
            value,
        }
    }
}

/// A Kafka record whose value did not parse (one JSON line of a dead-letter file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaDeadLetter {
    /// Why it did not parse.
    pub reason: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The value as text (invalid UTF-8 replaced by U+FFFD), if it had one.
    pub raw: Option<String>,
}

/// Parses one value in `format`. A value is one record: a trailing `\n` (or `\r\n`)
/// is dropped for CSV and JSON; a line is kept as it is. A missing value (a
/// tombstone) is a bad record in every format.
pub fn parse_value(format: Format, value: Option<Vec<u8>>) -> Result<Record, String> {
    let Some(value) = value else {
        return Err("the record has no value (a tombstone)".into());
    };
    match format {
        Format::Lines => Ok(Record::Line(value)),
        Format::JsonLines => serde_json::from_slice(trim_newline(&value))
            .map(Record::Json)
            .map_err(|e| format!("not JSON: {e}")),
        Format::Csv { .. } => {
            let text = trim_newline(&value);
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .buffer_capacity(text.len().max(16))
                .from_reader(text);
            let mut fields = csv::StringRecord::new();
            match reader.read_record(&mut fields) {
                Ok(true) => {}
                Ok(false) => return Err("an empty value is no CSV row".into()),
                Err(e) => return Err(format!("not a CSV row: {e}")),
            }
            let mut more = csv::StringRecord::new();
            match reader.read_record(&mut more) {
                Ok(false) => Ok(Record::Row {
                    fields,
                    header: None,
                }),
                Ok(true) => Err("the value holds more than one CSV row".into()),
                Err(e) => Err(format!("not a CSV row: {e}")),
            }
        }
    }
}

fn trim_newline(value: &[u8]) -> &[u8] {
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    value.strip_suffix(b"\r").unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_in_each_format() {
        assert_eq!(
            parse_value(Format::Lines, Some(b"a,b".to_vec())).unwrap(),
            Record::Line(b"a,b".to_vec())
        );
        assert_eq!(
            parse_value(Format::JsonLines, Some(b"{\"x\":1}\n".to_vec())).unwrap(),
            Record::Json(serde_json::json!({"x": 1}))
        );
        match parse_value(Format::Csv { header: false }, Some(b"1,\"a,b\"\n".to_vec())).unwrap() {
            Record::Row { fields, header } => {
                assert_eq!(fields.iter().collect::<Vec<_>>(), ["1", "a,b"]);
                assert!(header.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_say_why() {
        for (format, value, expected) in [
            (Format::JsonLines, Some(&b"{x"[..]), "not JSON"),
            (
                Format::Csv { header: true },
                Some(&b"1\n2"[..]),
                "more than one",
            ),
            (Format::Csv { header: true }, Some(&b""[..]), "empty"),
            (Format::Lines, None, "tombstone"),
        ] {
            let error = parse_value(format, value.map(<[u8]>::to_vec)).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
