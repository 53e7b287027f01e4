//! [`WatchedFolderSource`]: a folder watched with inotify (unbounded). Files that
//! appear complete — closed after writing (`IN_CLOSE_WRITE`) or moved in
//! (`IN_MOVED_TO`) — are read exactly once, and so are the files present at start-up.
//!
//! Each subtask runs one small watcher thread (off the data cores' executors): it adds
//! the inotify watch *first*, then lists the folder, then waits in `poll(2)` on the
//! inotify fd and an eventfd that [`Source::close`] writes to stop it. It hands file
//! names over through a bounded queue ([`WatchSettings::queue_capacity`]) and rings the
//! task's doorbell, so the task sleeps while nothing happens and wakes within
//! microseconds of a file's close. A full queue blocks only the watcher thread; the
//! kernel queue then fills, and if it overflows (`IN_Q_OVERFLOW`) the thread lists the
//! folder again. Every name may so arrive twice (listing and event, or a rescan): the
//! source keeps the names it took and takes each once. Files are spread over the
//! subtasks by a stable hash of their name, so each subtask watches the folder but
//! reads only its own files.
//!
//! Conventions and limits:
//! * names starting with `.` or `_` are skipped (write `.name`, then rename: the
//!   rename is the `IN_MOVED_TO` that publishes the file);
//! * a file is read once per job: a file rewritten under a name already read is not
//!   read again;
//! * files found by listing (at start-up, or after an overflow) are taken as complete:
//!   a writer that writes in place while the source starts or rescans may be read
//!   early; writers that must never be read early write elsewhere and move in;
//! * the names taken are kept in memory (and in the position) for the job's lifetime.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};

use eddy_engine::prelude::*;
use eddy_engine::runtime::doorbell::Doorbell;
use inotify::{EventMask, Inotify, WatchMask};
use rustix::event::{PollFd, PollFlags};

use super::bad_records::FileSourceMetrics;
use super::error::FileError;
use super::listing::{is_hidden, list_folder, owner_of};
use super::reading::{FileSourcePosition, ReadSettings, Reading};
use super::record::Record;

/// Settings of a watched folder.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// How files are read.
    pub read: ReadSettings,
    /// File names in flight from the watcher thread to its task (bounded).
    pub queue_capacity: usize,
}

/// Names taken from the watcher per poll at most (the rest wait for the next poll).
const NAMES_PER_POLL: usize = 1024;

/// What the watcher thread hands over.
#[derive(Debug)]
enum WatchMessage {
    /// A file that is complete (or was found by listing the folder).
    File(OsString),
    /// The watch ended: the folder went away or inotify failed.
    Failed(String),
}

/// Reads every file that appears complete in a folder, once (unbounded, parallel).
#[derive(Debug)]
pub struct WatchedFolderSource {
    folder: PathBuf,
    settings: WatchSettings,
    metrics: FileSourceMetrics,
    resume: Option<FileSourcePosition>,
    doorbell: Option<Arc<Doorbell>>,
    watching: Option<Watching>,
    subtask: String,
}

#[derive(Debug)]
struct Watching {
    reading: Reading,
    /// Names taken (queued, being read or done).
    taken: HashSet<OsString>,
    /// The watcher's queue (a `Mutex` only to make the source `Sync`; reached through
    /// `get_mut`, never locked).
    names: Mutex<Receiver<WatchMessage>>,
    /// Written to stop the watcher thread.
    stop: OwnedFd,
}

/// A clone is an unopened source of the same folder sharing the same counters.
impl Clone for WatchedFolderSource {
    fn clone(&self) -> Self {
        WatchedFolderSource {
            folder: self.folder.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            resume: self.resume.clone(),
            doorbell: None,
            watching: None,
            subtask: String::new(),
        }
    }
}

impl WatchedFolderSource {
    /// A source watching `folder`.
    pub fn new(folder: impl AsRef<Path>, settings: WatchSettings) -> Self {
        WatchedFolderSource {
            folder: folder.as_ref().to_path_buf(),
            settings,
            metrics: FileSourceMetrics::default(),
            resume: None,
            doorbell: None,
            watching: None,
            subtask: String::new(),
        }
    }

    /// Starts from a position taken from [`WatchedFolderSource::position`]: files done
    /// are not read again, the current one continues where it stopped.
    pub fn resume_from(mut self, position: FileSourcePosition) -> Self {
        self.resume = Some(position);
        self
    }

    /// The counters of all subtasks (records, bad records, files).
    pub fn metrics(&self) -> FileSourceMetrics {
        self.metrics.clone()
    }

    /// How far this subtask has read (what a checkpoint will store). Files queued but
    /// not started are not in it: after a restore the listing finds them again.
    pub fn position(&self) -> FileSourcePosition {
        self.watching
            .as_ref()
            .map(|w| w.reading.position())
            .unwrap_or_default()
    }

    fn start(&mut self, subtask: &SubtaskInfo) -> Result<(), FileError> {
        let folder = self.folder.clone();
        let metadata =
            std::fs::metadata(&folder).map_err(|e| FileError::io("cannot watch", &folder, e))?;
        if !metadata.is_dir() {
            return Err(FileError::Config(format!(
                "cannot watch '{}': not a folder",
                folder.display()
            )));
        }
        let watch_error = |e: std::io::Error| FileError::io("cannot watch", &folder, e);
        let inotify = Inotify::init().map_err(watch_error)?;
        inotify
            .watches()
            .add(
                &folder,
                WatchMask::CLOSE_WRITE
                    | WatchMask::MOVED_TO
                    | WatchMask::DELETE_SELF
                    | WatchMask::MOVE_SELF
                    | WatchMask::ONLYDIR,
            )
            .map_err(watch_error)?;
        let stop = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| watch_error(e.into()))?;
        let stop_watcher = stop.try_clone().map_err(watch_error)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(self.settings.queue_capacity.max(1));
        let watcher = Watcher {
            folder: folder.clone(),
            index: subtask.index,
            parallelism: subtask.parallelism.max(1),
            sender,
            doorbell: self.doorbell.clone(),
        };
        std::thread::Builder::new()
            .name(format!("eddy-watch-{}", subtask.index))
            .spawn(move || watcher.run(inotify, stop_watcher))
            .map_err(watch_error)?;

        let mut reading = Reading::new(self.settings.read.clone(), self.metrics.clone());
        let mut taken = HashSet::new();
        if let Some(position) = self.resume.take() {
            for path in position
                .done
                .iter()
                .chain(position.current.iter().map(|(p, _)| p))
            {
                if let Some(name) = path.file_name() {
                    taken.insert(name.to_os_string());
                }
            }
            reading.resume(position);
        }
        self.watching = Some(Watching {
            reading,
            taken,
            names: Mutex::new(receiver),
            stop,
        });
        self.subtask = subtask.to_string();
        Ok(())
    }
}

impl Source<Record> for WatchedFolderSource {
    fn set_doorbell(&mut self, doorbell: Arc<Doorbell>) {
        self.doorbell = Some(doorbell);
    }

    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        Ok(self.start(subtask)?)
    }

    /// Files done and where the current one continues.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(self.position().encode()?))
    }

    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        if let Some(position) = FileSourcePosition::restored(subtask, positions, old_parallelism)? {
            self.resume = Some(position);
        }
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Record>,
    ) -> Result<SourceStatus, ConnectorError> {
        let Some(watching) = self.watching.as_mut() else {
            return Err(ConnectorError::new(
                "the watched folder was polled before it was opened",
            ));
        };
        let names = watching.names.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut more_names = false;
        for taken_this_poll in 0.. {
            if taken_this_poll == NAMES_PER_POLL {
                more_names = true;
                break;
            }
            match names.try_recv() {
                Ok(WatchMessage::File(name)) => {
                    if !watching.taken.contains(&name) {
                        watching.reading.push(self.folder.join(&name));
                        watching.taken.insert(name);
                    }
                }
                Ok(WatchMessage::Failed(reason)) => {
                    return Err(FileError::Watch {
                        folder: self.folder.clone(),
                        reason,
                    }
                    .into())
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(FileError::Watch {
                        folder: self.folder.clone(),
                        reason: "the watcher thread ended".into(),
                    }
                    .into())
                }
            }
        }
        watching.reading.poll(out)?;
        Ok(if more_names || !watching.reading.is_empty() {
            SourceStatus::Ready
        } else {
            SourceStatus::Idle
        })
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(watching) = self.watching.take() {
            // Wake the watcher's poll; it sees the eventfd and returns. If the write
            // fails the thread still ends at its next send (the queue is dropped).
            let _ = rustix::io::write(&watching.stop, &1u64.to_ne_bytes());
            watching.reading.log_summary(&self.subtask);
        }
        Ok(())
    }
}

/// The watcher thread of one subtask.
struct Watcher {
    folder: PathBuf,
    index: usize,
    parallelism: usize,
    sender: SyncSender<WatchMessage>,
    doorbell: Option<Arc<Doorbell>>,
}

/// Why the watcher stops.
enum Stop {
    /// Asked to (close) or the source went away.
    Done,
    /// Something failed: tell the source.
    Failed(String),
}

impl Watcher {
    fn run(self, mut inotify: Inotify, stop: OwnedFd) {
        if let Err(Stop::Failed(reason)) = self.watch(&mut inotify, &stop) {
            tracing::debug!(folder = %self.folder.display(), %reason, "watch failed");
            let _ = self.sender.send(WatchMessage::Failed(reason));
            self.ring();
        }
    }

    fn watch(&self, inotify: &mut Inotify, stop: &OwnedFd) -> Result<(), Stop> {
        self.rescan()?;
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let mut fds = [
                PollFd::new(inotify, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => return Err(Stop::Failed(format!("poll failed: {error}"))),
            }
            if !fds[1].revents().is_empty() {
                return Ok(());
            }
            loop {
                let events = match inotify.read_events(&mut buffer) {
                    Ok(events) => events,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(Stop::Failed(format!("inotify failed: {error}"))),
                };
                let mut overflow = false;
                let mut names = Vec::new();
                for event in events {
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        overflow = true;
                    } else if event.mask.intersects(
                        EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED,
                    ) {
                        return Err(Stop::Failed("the folder was removed or moved away".into()));
                    } else if !event.mask.contains(EventMask::ISDIR) {
                        if let Some(name) = event.name {
                            names.push(name.to_os_string());
                        }
                    }
                }
                for name in names {
                    self.offer(name)?;
                }
                if overflow {
                    tracing::info!(folder = %self.folder.display(), "inotify queue overflow: listing the folder again");
                    self.rescan()?;
                }
            }
        }
    }

    /// Hands over every file of the folder (start-up and after an overflow).
    fn rescan(&self) -> Result<(), Stop> {
        let files = list_folder(&self.folder, None).map_err(|e| Stop::Failed(e.to_string()))?;
        for path in files {
            if let Some(name) = path.file_name() {
                self.offer(name.to_os_string())?;
            }
        }
        Ok(())
    }

    /// Hands over a file name if it is this subtask's and not hidden.
    fn offer(&self, name: OsString) -> Result<(), Stop> {
        if is_hidden(&name) || owner_of(&name, self.parallelism) != self.index {
            return Ok(());
        }
        self.ring();
        self.sender
            .send(WatchMessage::File(name))
            .map_err(|_| Stop::Done)?;
        self.ring();
        Ok(())
    }

    fn ring(&self) {
        if let Some(doorbell) = &self.doorbell {
            doorbell.ring();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{BadRecordPolicy, Format};

    // Tests wait on conditions with deadlines, using the OS clock.
    #[allow(clippy::disallowed_methods)]
    fn poll_until(
        source: &mut WatchedFolderSource,
        lines: &mut Vec<String>,
        done: impl Fn(&[String]) -> bool,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut batch = Batch::new();
        while !done(lines) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out with {lines:?}"
            );
            let mut out = SourceOutput::new(&mut batch, 64);
            let status = source.poll_next(&mut out).unwrap();
            for record in batch.drain_values() {
                match record {
                    Record::Line(bytes) => lines.push(String::from_utf8(bytes).unwrap()),
                    other => panic!("{other:?}"),
                }
            }
            if status == SourceStatus::Idle {
                std::thread::yield_now();
            }
        }
    }

    fn source(folder: &Path) -> WatchedFolderSource {
        let mut source = WatchedFolderSource::new(
            folder,
            WatchSettings {
                read: ReadSettings {
                    format: Format::Lines,
                    on_bad_record: BadRecordPolicy::Fail,
                },
                queue_capacity: 4,
            },
        );
        source
            .open(&SubtaskInfo {
                job: "t".into(),
                operator: "watch".into(),
                index: 0,
                parallelism: 1,
            })
            .unwrap();
        source
    }

    #[test]
    fn files_at_start_closed_after_writing_and_moved_in_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("before.txt"), "before\n").unwrap();
        let mut source = source(dir.path());
        let mut lines = Vec::new();
        poll_until(&mut source, &mut lines, |l| l.len() == 1);
        std::fs::write(dir.path().join("written.txt"), "written\n").unwrap();
        std::fs::write(elsewhere.path().join("moved.txt"), "moved\n").unwrap();
        std::fs::rename(
            elsewhere.path().join("moved.txt"),
            dir.path().join("moved.txt"),
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden"), "hidden\n").unwrap();
        // More files than the queue holds: the watcher waits for the source.
        for index in 0..20 {
            std::fs::write(
                dir.path().join(format!("n{index}.txt")),
                format!("n{index}\n"),
            )
            .unwrap();
        }
        poll_until(&mut source, &mut lines, |l| l.len() == 23);
        let position = source.position();
        assert_eq!(position.done.len(), 23);
        let watching = source.watching.as_mut().unwrap();
        assert_eq!(watching.taken.len(), 23);
        lines.sort();
        lines.dedup();
        assert_eq!(lines.len(), 23);
        assert!(!lines.contains(&"hidden".to_string()));
        source.close().unwrap();
    }

    #[test]
    fn a_rescan_hands_over_names_the_source_takes_once() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..5 {
            std::fs::write(
                dir.path().join(format!("{index}.txt")),
                format!("{index}\n"),
            )
            .unwrap();
        }
        let mut source = source(dir.path());
        let mut lines = Vec::new();
        poll_until(&mut source, &mut lines, |l| l.len() == 5);
        // Simulate an overflow's rescan from a second watcher on the same queue.
        let (sender, receiver) = std::sync::mpsc::sync_channel(100);
        let watcher = Watcher {
            folder: dir.path().to_path_buf(),
            index: 0,
            parallelism: 1,
            sender,
            doorbell: None,
        };
        std::fs::write(dir.path().join("late.txt"), "late\n").unwrap();
        assert!(watcher.rescan().is_ok());
        *source.watching.as_mut().unwrap().names.get_mut().unwrap() = receiver;
        let mut batch = Batch::new();
        let mut out = SourceOutput::new(&mut batch, 64);
        source.poll_next(&mut out).unwrap();
        let new: Vec<Record> = batch.drain_values().collect();
        assert_eq!(new, [Record::Line(b"late".to_vec())]);
        drop(watcher);
    }

    #[test]
    fn a_missing_folder_is_named() {
        let mut source = WatchedFolderSource::new(
            "/nonexistent/eddy-watch",
            WatchSettings {
                read: ReadSettings {
                    format: Format::Lines,
                    on_bad_record: BadRecordPolicy::Fail,
                },
                queue_capacity: 4,
            },
        );
        let error = source
            .open(&SubtaskInfo {
                job: "t".into(),
                operator: "watch".into(),
                index: 0,
                parallelism: 1,
            })
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/eddy-watch"), "{error}");
    }
}
