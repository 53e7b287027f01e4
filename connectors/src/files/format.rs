//! The record formats of files: CSV (with or without a header line), JSON lines, and
//! raw lines.

use std::path::Path;
use std::str::FromStr;

use super::error::FileError;

/// How the bytes of a file become records (and records become bytes in a sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with RFC 4180 quoting; `header`: the first row of each
    /// file names the columns (it is not a record).
    Csv {
        /// Whether the first row of each file is a header.
        header: bool,
    },
    /// One JSON value per line (`serde_json`); blank lines carry no record.
    JsonLines,
    /// One record per `\n`-terminated line, its bytes as they are (without the `\n`).
    Lines,
}

impl Format {
    /// The format's name as users write it: `csv`, `jsonl`, `lines`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::JsonLines => "jsonl",
            Format::Lines => "lines",
        }
    }

    /// The format a file name suggests (`.csv`, `.jsonl`/`.ndjson`, `.txt`/`.log`), if
    /// any. CSV files are taken to have a header.
    pub fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv { header: true }),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "txt" | "log" => Some(Format::Lines),
            _ => None,
        }
    }
}

/// Parses `csv` (with a header), `jsonl` or `lines`.
impl FromStr for Format {
    type Err = FileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "csv" => Ok(Format::Csv { header: true }),
            "jsonl" => Ok(Format::JsonLines),
            "lines" => Ok(Format::Lines),
            other => Err(FileError::Config(format!(
                "unknown format '{other}': expected csv, jsonl or lines"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for name in ["csv", "jsonl", "lines"] {
            assert_eq!(name.parse::<Format>().unwrap().name(), name);
        }
        let error = "xml".parse::<Format>().unwrap_err().to_string();
        assert!(error.contains("'xml'"), "{error}");
    }

    #[test]
    fn extensions_suggest_formats() {
        assert_eq!(
            Format::from_extension(Path::new("/a/b.csv")),
            Some(Format::Csv { header: true })
        );
        assert_eq!(
            Format::from_extension(Path::new("x.ndjson")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_extension(Path::new("x.bin")), None);
        assert_eq!(Format::from_extension(Path::new("noext")), None);
    }
}
