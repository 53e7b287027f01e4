//! The result preview of a job run by the daemon: the last records of its `print:`
//! sink, kept in memory as rows of text for `GET /jobs/{id}/preview` and the web UI's
//! table and chart (in the spirit of Apache Zeppelin's result display).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eddy_connectors::files::Record;

use crate::prelude::*;

/// One record as columns of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    /// Its column names.
    pub columns: Arc<Vec<String>>,
    /// Its fields, as many as `columns`.
    pub fields: Vec<String>,
}

/// What `GET /jobs/{id}/preview` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewSnapshot {
    /// The column names of the newest record.
    pub columns: Vec<String>,
    /// The newest rows with those columns, oldest first.
    pub rows: Vec<Vec<String>>,
    /// Every record the sink received.
    pub total: u64,
}

/// The last `capacity` records a sink received (the sink takes one lock per buffer;
/// readers copy out what they show).
#[derive(Debug)]
pub struct Preview {
    capacity: usize,
    rows: Mutex<VecDeque<PreviewRow>>,
    total: AtomicU64,
}

impl Preview {
    /// Keeps the last `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Preview {
            capacity: capacity.max(1),
            rows: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
            total: AtomicU64::new(0),
        }
    }

    /// Records received so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Adds rows (the oldest go beyond the capacity).
    pub fn extend(&self, rows: impl IntoIterator<Item = PreviewRow>) {
        let mut kept = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = 0;
        for row in rows {
            if kept.len() == self.capacity {
                kept.pop_front();
            }
            kept.push_back(row);
            added += 1;
        }
        self.total.fetch_add(added, Ordering::Relaxed);
    }

    /// The newest `limit` rows that have the newest row's columns.
    pub fn snapshot(&self, limit: usize) -> PreviewSnapshot {
        let kept = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let Some(newest) = kept.back() else {
            return PreviewSnapshot {
                columns: Vec::new(),
                rows: Vec::new(),
                total: self.total(),
            };
        };
        let columns = Arc::clone(&newest.columns);
        let mut rows: Vec<Vec<String>> = kept
            .iter()
            .rev()
            .filter(|row| row.columns == columns)
            .take(limit)
            .map(|row| row.fields.clone())
            .collect();
        rows.reverse();
        PreviewSnapshot {
            columns: columns.as_ref().clone(),
            rows,
            total: self.total(),
        }
    }
}

/// Turns records into preview rows, reusing the column lists of headers it has seen.
#[derive(Debug, Default)]
struct RowMaker {
    /// The last header seen and its columns (records of one file share one header).
    last_header: Option<(Arc<csv::StringRecord>, Arc<Vec<String>>)>,
    /// Columns of rows without a header, by width.
    numbered: Vec<Arc<Vec<String>>>,
    line: Option<Arc<Vec<String>>>,
}

impl RowMaker {
    fn row(&mut self, record: &Record) -> PreviewRow {
        match record {
            Record::Row {
                fields,
                header: Some(header),
            } => {
                let columns = match &self.last_header {
                    Some((seen, columns)) if Arc::ptr_eq(seen, header) => Arc::clone(columns),
                    _ => {
                        let columns = Arc::new(header.iter().map(str::to_string).collect());
                        self.last_header = Some((Arc::clone(header), Arc::clone(&columns)));
                        columns
                    }
                };
                let mut fields: Vec<String> = fields.iter().map(str::to_string).collect();
                fields.resize(columns.len(), String::new());
                PreviewRow { columns, fields }
            }
            Record::Row {
                fields,
                header: None,
            } => PreviewRow {
                columns: self.numbered(fields.len()),
                fields: fields.iter().map(str::to_string).collect(),
            },
            Record::Json(serde_json::Value::Object(map)) => PreviewRow {
                columns: Arc::new(map.keys().cloned().collect()),
                fields: map
                    .values()
                    .map(|value| match value {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            },
            Record::Json(other) => PreviewRow {
                columns: self.line_column(),
                fields: vec![other.to_string()],
            },
            Record::Line(bytes) => PreviewRow {
                columns: self.line_column(),
                fields: vec![String::from_utf8_lossy(bytes).into_owned()],
            },
        }
    }

    fn numbered(&mut self, width: usize) -> Arc<Vec<String>> {
        while self.numbered.len() <= width {
            let n = self.numbered.len();
            self.numbered
                .push(Arc::new((0..n).map(|i| format!("c{i}")).collect()));
        }
        Arc::clone(&self.numbered[width])
    }

    fn line_column(&mut self) -> Arc<Vec<String>> {
        Arc::clone(
            self.line
                .get_or_insert_with(|| Arc::new(vec!["line".to_string()])),
        )
    }
}

/// A sink that shows its records in a [`Preview`] (the daemon's `print:`).
#[derive(Debug)]
pub struct PreviewSink {
    preview: Arc<Preview>,
    maker: RowMaker,
    rows: Vec<PreviewRow>,
}

impl PreviewSink {
    /// A sink adding to `preview`.
    pub fn new(preview: Arc<Preview>) -> Self {
        PreviewSink {
            preview,
            maker: RowMaker::default(),
            rows: Vec::new(),
        }
    }
}

impl Clone for PreviewSink {
    fn clone(&self) -> Self {
        PreviewSink::new(Arc::clone(&self.preview))
    }
}

impl Sink<Record> for PreviewSink {
    fn write(&mut self, record: Record) -> Result<(), ConnectorError> {
        let row = self.maker.row(&record);
        self.preview.extend([row]);
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Batch<Record>) -> Result<(), ConnectorError> {
        // Only the last `capacity` of a buffer can be shown.
        let skip = batch.len().saturating_sub(self.preview.capacity);
        self.rows.clear();
        let mut skipped = 0u64;
        for (index, record) in batch.drain_values().enumerate() {
            if index < skip {
                skipped += 1;
                continue;
            }
            let row = self.maker.row(&record);
            self.rows.push(row);
        }
        self.preview.total.fetch_add(skipped, Ordering::Relaxed);
        self.preview.extend(self.rows.drain(..));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_row(header: &Arc<csv::StringRecord>, fields: &[&str]) -> Record {
        Record::Row {
            fields: csv::StringRecord::from(fields.to_vec()),
            header: Some(Arc::clone(header)),
        }
    }

    #[test]
    fn keeps_the_newest_rows_of_the_newest_columns() {
        let preview = Arc::new(Preview::new(3));
        let mut sink = PreviewSink::new(Arc::clone(&preview));
        let bids = Arc::new(csv::StringRecord::from(vec!["auction", "price"]));
        let persons = Arc::new(csv::StringRecord::from(vec!["id", "name"]));
        let mut batch = Batch::new();
        batch.push(csv_row(&persons, &["1", "ann"]));
        batch.push(csv_row(&bids, &["7", "10"]));
        batch.push(csv_row(&persons, &["2", "bob"]));
        batch.push(csv_row(&bids, &["8", "11"]));
        batch.push(csv_row(&bids, &["9", "12"]));
        sink.write_batch(&mut batch).unwrap();
        let shown = preview.snapshot(10);
        assert_eq!(shown.total, 5);
        assert_eq!(shown.columns, vec!["auction", "price"]);
        // Capacity 3: [bob, 8, 9]; the newest columns are the bids'.
        assert_eq!(
            shown.rows,
            vec![
                vec!["8".to_string(), "11".into()],
                vec!["9".into(), "12".into()]
            ]
        );
        assert_eq!(
            preview.snapshot(1).rows,
            vec![vec!["9".to_string(), "12".into()]]
        );
    }

    #[test]
    fn lines_and_json_have_columns() {
        let preview = Arc::new(Preview::new(10));
        let mut sink = PreviewSink::new(Arc::clone(&preview));
        sink.write(Record::Line(b"hello".to_vec())).unwrap();
        assert_eq!(preview.snapshot(10).columns, vec!["line"]);
        sink.write(Record::Json(serde_json::json!({"a": 1, "b": "x"})))
            .unwrap();
        let shown = preview.snapshot(10);
        assert_eq!(shown.columns, vec!["a", "b"]);
        assert_eq!(shown.rows, vec![vec!["1".to_string(), "x".into()]]);
        assert_eq!(shown.total, 2);
    }
}
