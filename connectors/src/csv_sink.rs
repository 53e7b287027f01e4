//! A sink writing records as CSV rows into one file, after a header line.
//!
//! Records are serialised with serde (a tuple or a struct becomes one row; fields are
//! quoted when needed). The sink runs with parallelism 1 (one file); writes go through
//! a 256 KiB buffer and the file is flushed and synced when the input ends.

use std::fs::File;
use std::io::BufWriter;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use eddy_engine::prelude::*;
use serde::Serialize;

/// Writes rows of `T` into a CSV file.
pub struct CsvFileSink<T> {
    path: PathBuf,
    header: Vec<String>,
    writer: Option<csv::Writer<BufWriter<File>>>,
    _rows: PhantomData<fn(T)>,
}

impl<T> Clone for CsvFileSink<T> {
    fn clone(&self) -> Self {
        assert!(
            self.writer.is_none(),
            "a sink is cloned before it is opened"
        );
        CsvFileSink {
            path: self.path.clone(),
            header: self.header.clone(),
            writer: None,
            _rows: PhantomData,
        }
    }
}

impl<T> CsvFileSink<T> {
    /// A sink writing to `path` (created or truncated when the job starts) with these
    /// column names.
    pub fn new(path: impl AsRef<Path>, header: &[&str]) -> Self {
        CsvFileSink {
            path: path.as_ref().to_path_buf(),
            header: header.iter().map(|column| column.to_string()).collect(),
            writer: None,
            _rows: PhantomData,
        }
    }

    fn error(
        &self,
        what: &str,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> ConnectorError {
        ConnectorError::with_source(format!("{what} '{}'", self.path.display()), error)
    }
}

impl<T: Serialize + Send + 'static> Sink<T> for CsvFileSink<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        if subtask.parallelism != 1 {
            return Err(ConnectorError::new(format!(
                "the CSV sink writes one file and needs parallelism 1, got {}",
                subtask.parallelism
            )));
        }
        let file =
            File::create(&self.path).map_err(|e| self.error("cannot create output file", e))?;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(BufWriter::with_capacity(256 << 10, file));
        writer
            .write_record(&self.header)
            .map_err(|e| self.error("cannot write", e))?;
        self.writer = Some(writer);
        Ok(())
    }

    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        let writer = self.writer.as_mut().expect("opened before written");
        if let Err(error) = writer.serialize(record) {
            return Err(self.error("cannot write", error));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let file = writer
            .into_inner()
            .map_err(|e| self.error("cannot flush", e.into_error()))?
            .into_inner()
            .map_err(|e| self.error("cannot flush", e.into_error()))?;
        file.sync_all().map_err(|e| self.error("cannot sync", e))
    }
}
