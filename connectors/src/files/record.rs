//! [`Record`]: what the file sources emit, and [`RecordEncoder`]: how a sink writes a
//! record in a format.
//!
//! A record keeps the shape its format gives it, without conversion on the read path:
//! a CSV row is a [`csv::StringRecord`] (one buffer for all fields) with the file's
//! header shared by `Arc` (no copy per record), a JSON line is a [`serde_json::Value`],
//! a raw line is its bytes. Conversion happens only where a sink writes another
//! format, straight into its output buffer (no intermediate value).

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::error::FileError;
use super::format::Format;

/// One record of a file (or of any source of the `copy` job).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A CSV row.
    Row {
        /// Its fields.
        fields: csv::StringRecord,
        /// The column names of its file, if the format has a header.
        header: Option<Arc<csv::StringRecord>>,
    },
    /// A JSON value (one line of a JSON-lines file).
    Json(serde_json::Value),
    /// A line, its bytes as they are (without the `\n`).
    Line(Vec<u8>),
}

/// A CSV row as JSON: an object by column name when there is a header (extra fields
/// named by their index), an array of strings otherwise.
struct RowAsJson<'a> {
    fields: &'a csv::StringRecord,
    header: Option<&'a csv::StringRecord>,
}

impl Serialize for RowAsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.header {
            Some(header) => {
                let mut map = serializer.serialize_map(Some(self.fields.len()))?;
                for (index, value) in self.fields.iter().enumerate() {
                    match header.get(index) {
                        Some(name) => map.serialize_entry(name, value)?,
                        None => map.serialize_entry(&index.to_string(), value)?,
                    }
                }
                map.end()
            }
            None => {
                let mut seq = serializer.serialize_seq(Some(self.fields.len()))?;
                for value in self.fields.iter() {
                    seq.serialize_element(value)?;
                }
                seq.end()
            }
        }
    }
}

/// Writes records as lines of one format into a byte buffer. Keeps its scratch
/// buffer, so encoding allocates nothing per record once warm (JSON → CSV aside).
#[derive(Debug)]
pub struct RecordEncoder {
    format: Format,
    csv: csv_core::Writer,
    /// Whether a CSV header was written (CSV with `header`: from the first record).
    header_written: bool,
}

impl RecordEncoder {
    /// An encoder for `format`. With `Format::Csv { header: true }` the first record's
    /// column names (a row's header, a JSON object's keys) are written first.
    pub fn new(format: Format) -> Self {
        RecordEncoder {
            format,
            csv: csv_core::WriterBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            header_written: false,
        }
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Starts a new output file: a CSV header is written again before the next record.
    pub fn reset(&mut self) {
        self.header_written = false;
    }

    /// Appends `record` as one line (with its `\n`) to `out`.
    pub fn encode(&mut self, record: &Record, out: &mut Vec<u8>) -> Result<(), FileError> {
        match self.format {
            Format::Csv { header } => self.encode_csv(record, header, out),
            Format::JsonLines => {
                match record {
                    Record::Row { fields, header } => serde_json::to_writer(
                        &mut *out,
                        &RowAsJson {
                            fields,
                            header: header.as_deref(),
                        },
                    ),
                    Record::Json(value) => serde_json::to_writer(&mut *out, value),
                    Record::Line(bytes) => match std::str::from_utf8(bytes) {
                        Ok(text) => serde_json::to_writer(&mut *out, text),
                        Err(error) => {
                            return Err(FileError::Encode {
                                format: "jsonl",
                                reason: format!("a line is not valid UTF-8 ({error})"),
                            })
                        }
                    },
                }
                .map_err(|e| FileError::Encode {
                    format: "jsonl",
                    reason: e.to_string(),
                })?;
                out.push(b'\n');
                Ok(())
            }
            Format::Lines => match record {
                Record::Line(bytes) => {
                    out.extend_from_slice(bytes);
                    out.push(b'\n');
                    Ok(())
                }
                Record::Json(value) => {
                    serde_json::to_writer(&mut *out, value).map_err(|e| FileError::Encode {
                        format: "lines",
                        reason: e.to_string(),
                    })?;
                    out.push(b'\n');
                    Ok(())
                }
                Record::Row { .. } => self.encode_csv(record, false, out),
            },
        }
    }

    fn encode_csv(
        &mut self,
        record: &Record,
        header: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), FileError> {
        if header && !self.header_written {
            self.header_written = true;
            match record {
                Record::Row {
                    header: Some(names),
                    ..
                } => self.csv_record(names.iter().map(str::as_bytes), out),
                Record::Json(serde_json::Value::Object(map)) => {
                    self.csv_record(map.keys().map(String::as_bytes), out)
                }
                _ => {}
            }
        }
        match record {
            Record::Row { fields, .. } => self.csv_record(fields.iter().map(str::as_bytes), out),
            Record::Line(bytes) => self.csv_record([bytes.as_slice()], out),
            Record::Json(value) => {
                // Strings as they are, other values as JSON text.
                let texts: Vec<std::borrow::Cow<'_, str>> = match value {
                    serde_json::Value::Array(items) => items.iter().map(json_text).collect(),
                    serde_json::Value::Object(map) => map.values().map(json_text).collect(),
                    scalar => vec![json_text(scalar)],
                };
                self.csv_record(texts.iter().map(|t| t.as_bytes()), out)
            }
        }
        Ok(())
    }

    /// Appends one CSV row (quoted where needed, `\n`-terminated).
    fn csv_record<'f>(&mut self, fields: impl IntoIterator<Item = &'f [u8]>, out: &mut Vec<u8>) {
        for (index, field) in fields.into_iter().enumerate() {
            if index > 0 {
                self.csv_step(out, |writer, buffer| writer.delimiter(buffer));
            }
            let mut input = field;
            loop {
                let start = out.len();
                out.resize(start + input.len() * 2 + 8, 0);
                let (result, read, written) = self.csv.field(input, &mut out[start..]);
                out.truncate(start + written);
                input = &input[read..];
                if result == csv_core::WriteResult::InputEmpty {
                    break;
                }
            }
        }
        self.csv_step(out, |writer, buffer| writer.terminator(buffer));
    }

    /// Runs a csv-core step that needs a few bytes of room.
    fn csv_step(
        &mut self,
        out: &mut Vec<u8>,
        step: impl Fn(&mut csv_core::Writer, &mut [u8]) -> (csv_core::WriteResult, usize),
    ) {
        let start = out.len();
        out.resize(start + 8, 0);
        let (_, written) = step(&mut self.csv, &mut out[start..]);
        out.truncate(start + written);
    }
}

fn json_text(value: &serde_json::Value) -> std::borrow::Cow<'_, str> {
    match value {
        serde_json::Value::String(text) => std::borrow::Cow::Borrowed(text),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: Format, records: &[Record]) -> String {
        let mut encoder = RecordEncoder::new(format);
        let mut out = Vec::new();
        for record in records {
            encoder.encode(record, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn row(fields: &[&str], header: Option<&[&str]>) -> Record {
        Record::Row {
            fields: csv::StringRecord::from(fields.to_vec()),
            header: header.map(|h| Arc::new(csv::StringRecord::from(h.to_vec()))),
        }
    }

    #[test]
    fn rows_become_json_objects_by_column_or_arrays() {
        let with = row(&["1", "a,\"b\""], Some(&["id", "name"]));
        let without = row(&["1", "x"], None);
        assert_eq!(
            encode(Format::JsonLines, &[with, without]),
            "{\"id\":\"1\",\"name\":\"a,\\\"b\\\"\"}\n[\"1\",\"x\"]\n"
        );
    }

    #[test]
    fn csv_output_quotes_and_writes_the_header_once() {
        let records = [
            row(&["1", "a,b"], Some(&["id", "name"])),
            row(&["2", "c"], Some(&["id", "name"])),
        ];
        assert_eq!(
            encode(Format::Csv { header: true }, &records),
            "id,name\n1,\"a,b\"\n2,c\n"
        );
        assert_eq!(
            encode(Format::Csv { header: false }, &records),
            "1,\"a,b\"\n2,c\n"
        );
    }

    #[test]
    fn json_and_lines_convert_both_ways() {
        let json: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(
            encode(Format::Lines, &[Record::Json(json.clone())]),
            "{\"a\":1,\"b\":\"x\"}\n"
        );
        assert_eq!(
            encode(Format::Csv { header: true }, &[Record::Json(json)]),
            "a,b\n1,x\n"
        );
        assert_eq!(
            encode(Format::JsonLines, &[Record::Line(b"say \"hi\"".to_vec())]),
            "\"say \\\"hi\\\"\"\n"
        );
        assert_eq!(
            encode(Format::Lines, &[Record::Line(b"raw\r".to_vec())]),
            "raw\r\n"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_cannot_become_json() {
        let mut encoder = RecordEncoder::new(Format::JsonLines);
        let error = encoder
            .encode(&Record::Line(vec![0xff]), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("UTF-8"), "{error}");
    }
}
