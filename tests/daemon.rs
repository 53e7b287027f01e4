//! The daemon end to end: `eddy serve` as a child process, driven through the CLI client
//! and the REST API. A watched-folder copy job with exactly-once part files is
//! submitted, read back, savepointed, stopped with a savepoint, resubmitted from it,
//! and its daemon is killed with SIGKILL and started again; a standby daemon takes over
//! from a killed leader. Every line written into the watched folder must be committed
//! exactly once in the end (counted here, independently of eddy). Bad requests get
//! clear 4xx answers and change nothing.

// Tests use the OS clock for deadlines only.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
const DEADLINE: Duration = Duration::from_secs(120);

/// One daemon test at a time: each starts jobs pinned to every core.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `done` holds; fails naming `what` when [`DEADLINE`] passes first.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// A daemon process, killed (SIGKILL) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `eddy serve` on a free port and waits until it serves.
    fn start(state: &Path, log: &Path, extra: &[&str]) -> Daemon {
        let mut daemon = Daemon::spawn(state, log, extra);
        daemon.wait_serving();
        daemon
    }

    /// Starts `eddy serve` without waiting (a standby does not serve yet).
    fn spawn(state: &Path, log: &Path, extra: &[&str]) -> Daemon {
        let stderr = std::fs::File::create(log).unwrap();
        let child = Command::new(EDDY)
            .arg("serve")
            .arg("--state-dir")
            .arg(state)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .env("EDDY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_path_buf(),
            url: String::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for "serving on http://ADDR" in its log.
    fn wait_serving(&mut self) {
        let mut url = None;
        wait_until("the daemon serves", || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}): {}", self.log());
            }
            url = self
                .log()
                .lines()
                .find_map(|line| line.split("serving on ").nth(1).map(str::to_string));
            url.is_some()
        });
        self.url = url.unwrap().trim().to_string();
    }

    fn get(&self, path: &str) -> (u16, Value) {
        request("GET", &format!("{}{path}", self.url), None, None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        request("POST", &format!("{}{path}", self.url), Some(body), None)
    }

    /// Runs a client command against this daemon (`--server` goes right after the
    /// command: what follows a job's name is the job's).
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(EDDY)
            .arg(args[0])
            .args(["--server", &self.url])
            .args(&args[1..])
            .output()
            .unwrap()
    }

    /// Runs a client command that must succeed; its stdout, trimmed.
    fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "eddy {args:?} failed: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    fn state_of(&self, id: &str) -> String {
        let (status, job) = self.get(&format!("/jobs/{id}"));
        assert_eq!(status, 200, "{job}");
        job["state"].as_str().unwrap().to_string()
    }

    fn wait_state(&self, id: &str, state: &str) {
        wait_until(&format!("job {id} {state}"), || self.state_of(id) == state);
    }

    fn completed_checkpoints(&self, id: &str) -> u64 {
        let (status, checkpoints) = self.get(&format!("/jobs/{id}/checkpoints"));
        assert_eq!(status, 200, "{checkpoints}");
        checkpoints["counts"]["completed"].as_u64().unwrap()
    }
}

/// An HTTP request; the status and the JSON (or text) answer.
fn request(method: &str, url: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
    request_raw(method, url, body.map(|b| b.to_string()), token)
}

fn request_raw(method: &str, url: &str, body: Option<String>, token: Option<&str>) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut response = match method {
        "GET" => agent.get(url).call(),
        "DELETE" => match &auth {
            Some(auth) => agent.delete(url).header("Authorization", auth).call(),
            None => agent.delete(url).call(),
        },
        "POST" | "PATCH" => {
            let mut builder = if method == "POST" {
                agent.post(url)
            } else {
                agent.patch(url)
            };
            if let Some(auth) = &auth {
                builder = builder.header("Authorization", auth);
            }
            builder.send(body.unwrap_or_default())
        }
        other => panic!("method {other}"),
    }
    .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// The lines of the committed part files of `out` (hidden in-progress, pending and
/// withdrawn files are not committed).
fn committed_lines(out: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return lines;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
        {
            lines.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    lines
}

/// Files for a watched folder: written beside it, then moved in.
struct Feeder {
    watched: PathBuf,
    staging: PathBuf,
    expected: Vec<String>,
    files: usize,
}

impl Feeder {
    fn new(dir: &Path) -> Feeder {
        let (watched, staging) = (dir.join("in"), dir.join("staging"));
        std::fs::create_dir_all(&watched).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        Feeder {
            watched,
            staging,
            expected: Vec::new(),
            files: 0,
        }
    }

    /// Moves `files` new files of 50 lines each into the watched folder.
    fn burst(&mut self, files: usize) {
        for _ in 0..files {
            let name = format!("f{:05}.txt", self.files);
            self.files += 1;
            let mut text = String::new();
            for line in 0..50 {
                let row = format!("{name} line {line}");
                text.push_str(&row);
                text.push('\n');
                self.expected.push(row);
            }
            std::fs::write(self.staging.join(&name), text).unwrap();
            std::fs::rename(self.staging.join(&name), self.watched.join(&name)).unwrap();
        }
    }

    /// The copy job's arguments.
    fn job_args(&self, out: &Path) -> Vec<String> {
        vec![
            "--source".into(),
            format!("file://{}/?format=lines&watch=true", self.watched.display()),
            "--sink".into(),
            format!("file://{}/?format=lines", out.display()),
            "--checkpointing".into(),
            "exactly-once".into(),
            "--checkpoint-interval".into(),
            "50ms".into(),
            "--parallelism".into(),
            "2".into(),
        ]
    }

    /// Waits until every line written so far is committed, then checks each is there
    /// exactly once.
    fn assert_all_committed_once(&self, out: &Path, daemon: &Daemon) {
        wait_until("every line committed", || {
            committed_lines(out).len() >= self.expected.len()
        });
        let mut lines = committed_lines(out);
        let mut expected = self.expected.clone();
        lines.sort();
        expected.sort();
        assert_eq!(
            lines.len(),
            expected.len(),
            "no line lost or repeated; daemon log:\n{}",
            daemon.log()
        );
        assert_eq!(lines, expected);
    }
}

#[test]
fn submit_savepoint_stop_resubmit_and_survive_a_sigkill_exactly_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    let mut feeder = Feeder::new(dir.path());
    let daemon = Daemon::start(&state, &dir.path().join("a.log"), &[]);

    // Submit through the CLI, read through REST.
    let args = feeder.job_args(&out);
    let mut submit: Vec<&str> = vec!["submit", "copy"];
    submit.extend(args.iter().map(String::as_str));
    let id = daemon.cli_ok(&submit);
    assert_eq!(id.len(), 16, "a job id: {id}");
    let (status, job) = daemon.get(&format!("/jobs/{id}"));
    assert_eq!(status, 200);
    assert_eq!(job["state"], "RUNNING", "{job}");
    assert_eq!(job["name"], "copy");
    assert_eq!(job["args"], json!(args));
    let vertices = job["vertices"].as_array().unwrap();
    assert!(
        vertices
            .iter()
            .any(|v| v["name"].as_str().unwrap().contains("watch_folder")),
        "{job}"
    );
    let listed = daemon.cli_ok(&["list"]);
    assert!(
        listed.contains(&id) && listed.contains("RUNNING"),
        "{listed}"
    );

    feeder.burst(20);
    feeder.assert_all_committed_once(&out, &daemon);
    // The counters moved and are in /metrics.
    let (_, job) = daemon.get(&format!("/jobs/{id}"));
    let written: u64 = job["vertices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["metrics"]["write-records"].as_u64().unwrap())
        .sum();
    assert!(written >= 1000, "records counted: {job}");
    let (status, metrics) = request("GET", &format!("{}/metrics", daemon.url), None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(&format!(
            "eddy_vertex_records_out_total{{job_id=\"{id}\",job_name=\"copy\""
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("eddy_jobs{state=\"RUNNING\"} 1"),
        "{metrics}"
    );

    // A savepoint, then a stop with a savepoint.
    let savepoint = PathBuf::from(daemon.cli_ok(&["savepoint", &id]));
    assert!(
        savepoint.join("_metadata").is_file(),
        "{}",
        savepoint.display()
    );
    assert!(daemon.completed_checkpoints(&id) >= 1);
    feeder.burst(10);
    let stopped_at = PathBuf::from(daemon.cli_ok(&["stop", &id, "--savepoint"]));
    assert!(stopped_at.join("_metadata").is_file());
    assert_eq!(daemon.state_of(&id), "FINISHED");

    // Files arrive while no job runs; the resubmitted job reads them, and not the
    // ones the savepoint says are done.
    feeder.burst(10);
    let mut resubmit: Vec<&str> = vec!["submit", "--from-savepoint"];
    let stopped_text = stopped_at.display().to_string();
    resubmit.push(&stopped_text);
    resubmit.push("copy");
    resubmit.extend(args.iter().map(String::as_str));
    let second = daemon.cli_ok(&resubmit);
    assert_ne!(second, id);
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &daemon);
    wait_until("a checkpoint of the resubmitted job", || {
        daemon.completed_checkpoints(&second) >= 1
    });

    // SIGKILL the daemon; a new one on the same state folder resumes the job.
    feeder.burst(10);
    drop(daemon);
    feeder.burst(10);
    let daemon = Daemon::start(&state, &dir.path().join("b.log"), &[]);
    daemon.wait_state(&second, "RUNNING");
    let (_, job) = daemon.get(&format!("/jobs/{second}"));
    assert_eq!(job["resumed"], 1, "{job}");
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &daemon);
    // The first job ended before the kill: it is listed, not run again.
    assert_eq!(daemon.state_of(&id), "FINISHED");
    let (_, jobs) = daemon.get("/jobs");
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    daemon.cli_ok(&["cancel", &second]);
    daemon.wait_state(&second, "CANCELED");
}

#[test]
fn a_standby_takes_over_when_the_leader_is_killed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    let mut feeder = Feeder::new(dir.path());
    let leader = Daemon::start(&state, &dir.path().join("leader.log"), &[]);
    let (status, answer) = leader.post(
        "/jobs",
        json!({"job": "copy", "args": feeder.job_args(&out)}),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &leader);

    let mut standby = Daemon::spawn(&state, &dir.path().join("standby.log"), &[]);
    wait_until("the standby reports that it waits", || {
        standby.log().contains("standby")
    });
    assert!(
        standby.child.try_wait().unwrap().is_none(),
        "the standby must wait, not exit: {}",
        standby.log()
    );
    assert!(!standby.log().contains("serving on"), "two leaders");

    feeder.burst(10);
    let killed = Instant::now();
    drop(leader);
    standby.wait_serving();
    let takeover = killed.elapsed();
    assert!(
        takeover < Duration::from_secs(10),
        "took {takeover:?} to take over"
    );
    eprintln!("standby took over in {takeover:?}");
    standby.wait_state(&id, "RUNNING");
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &standby);
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b a\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("state"),
        &dir.path().join("log"),
        &["--auth-token-file", token_file.to_str().unwrap()],
    );
    let url = |path: &str| format!("{}{path}", daemon.url);
    let good = json!({"job": "wordcount", "args": ["--input", input.to_str().unwrap(), "--output", dir.path().join("out.csv").to_str().unwrap()]});
    let message = |answer: &Value| answer["message"].as_str().unwrap_or_default().to_string();

    // No token, a wrong token.
    let (status, answer) = request("POST", &url("/jobs"), Some(good.clone()), None);
    assert_eq!(status, 401, "{answer}");
    assert!(answer["errors"].is_array());
    let (status, _) = request("POST", &url("/jobs"), Some(good.clone()), Some("guess"));
    assert_eq!(status, 401);
    // Malformed JSON, wrong shapes, unknown jobs, bad arguments.
    let token = Some("s3cret");
    let (status, answer) = request_raw("POST", &url("/jobs"), Some("{\"job\":".into()), token);
    assert_eq!(status, 400);
    assert!(message(&answer).contains("malformed JSON"), "{answer}");
    let (status, answer) = request("POST", &url("/jobs"), Some(json!([1, 2])), token);
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = request("POST", &url("/jobs"), Some(json!({"job": "nope"})), token);
    assert_eq!(status, 400);
    assert!(message(&answer).contains("unknown job 'nope'"), "{answer}");
    let (status, answer) = request(
        "POST",
        &url("/jobs"),
        Some(json!({"job": "wordcount", "args": ["--input", input.to_str().unwrap()]})),
        token,
    );
    assert_eq!(status, 400);
    assert!(message(&answer).contains("--output"), "{answer}");
    let (status, answer) = request(
        "POST",
        &url("/jobs"),
        Some(
            json!({"job": "wordcount", "args": ["--input", "/no/such/file", "--output", "/tmp/x.csv"]}),
        ),
        token,
    );
    assert_eq!(status, 400);
    assert!(message(&answer).contains("/no/such/file"), "{answer}");
    let (status, answer) = request(
        "POST",
        &url("/jobs"),
        Some(json!({"job": "wordcount", "args": [], "from_savepoint": "/nowhere"})),
        token,
    );
    assert_eq!(status, 400, "{answer}");
    // Too large a body.
    let big = format!(
        "{{\"job\":\"wordcount\",\"args\":[\"{}\"]}}",
        "x".repeat(70_000)
    );
    let (status, _) = request_raw("POST", &url("/jobs"), Some(big), token);
    assert_eq!(status, 413);
    // Unknown jobs, paths and methods.
    let (status, answer) = daemon.get("/jobs/0123456789abcdef");
    assert_eq!(status, 404);
    assert!(message(&answer).contains("unknown job"), "{answer}");
    let (status, _) = daemon.get("/no/such/path");
    assert_eq!(status, 404);
    let (status, _) = request("DELETE", &url("/overview"), None, None);
    assert_eq!(status, 401, "DELETE needs the token before anything else");
    let (status, _) = request("DELETE", &url("/overview"), None, token);
    assert_eq!(status, 405);
    let (status, _) = request("PATCH", &url("/overview"), None, token);
    assert_eq!(status, 405);
    // Nothing was submitted by any of that.
    let (_, jobs) = daemon.get("/jobs");
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");

    // A good submission; a savepoint path that escapes the state folder is refused.
    let (status, answer) = request("POST", &url("/jobs"), Some(good), token);
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    for target in ["../escape", "/etc", "a/b", ".."] {
        let (status, answer) = request(
            "POST",
            &url(&format!("/jobs/{id}/savepoints")),
            Some(json!({"target-directory": target})),
            token,
        );
        assert!(
            status == 400 || status == 409,
            "{target}: {status} {answer}"
        );
    }
    assert!(!dir.path().join("escape").exists());
    daemon.wait_state(&id, "FINISHED");
    let (status, answer) = request(
        "POST",
        &url(&format!("/jobs/{id}/savepoints")),
        Some(json!({})),
        token,
    );
    assert_eq!(status, 409, "a finished job takes no savepoint: {answer}");
    let counts = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert!(counts.contains("a,2") && counts.contains("b,1"), "{counts}");

    // The CLI: a daemon error is one line and status 1; bad flags are status 2.
    let output = daemon.cli(&["status", "0123456789abcdef"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("unknown job"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let output = daemon.cli(&["cancel", &id]);
    assert_eq!(output.status.code(), Some(1), "no token: refused");
    let output = Command::new(EDDY)
        .args(["serve", "--state-dir"])
        .arg(dir.path())
        .args(["--http", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(EDDY)
        .args(["serve", "--state-dir"])
        .arg(dir.path())
        .args(["--auth-token-file", "/no/such/token"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/token"), "{stderr}");
    let output = Command::new(EDDY)
        .args(["list", "--server", "ftp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected http://"), "{stderr}");
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_the_next_one_resumes_its_jobs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    let mut feeder = Feeder::new(dir.path());
    let mut daemon = Daemon::start(&state, &dir.path().join("a.log"), &[]);
    let (status, answer) = daemon.post(
        "/jobs",
        json!({"job": "copy", "args": feeder.job_args(&out)}),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &daemon);
    let terminated = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let mut exit = None;
    wait_until("the daemon exits after SIGTERM", || {
        exit = daemon.child.try_wait().unwrap();
        exit.is_some()
    });
    assert!(exit.unwrap().success(), "exit status: {:?}", exit);
    // The job's record still says it runs: the next daemon resumes it.
    let record = std::fs::read_to_string(state.join("jobs").join(&id).join("job.json")).unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["state"], "RUNNING", "{record}");
    feeder.burst(10);
    let daemon = Daemon::start(&state, &dir.path().join("b.log"), &[]);
    daemon.wait_state(&id, "RUNNING");
    feeder.burst(10);
    feeder.assert_all_committed_once(&out, &daemon);
}

#[test]
fn running_jobs_show_latency_percentiles_per_job_and_vertex() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("state"), &dir.path().join("log"), &[]);
    let (status, answer) = daemon.post(
        "/jobs",
        json!({"job": "nexmark", "args": ["run", "--query", "q1", "--events", "100000000",
                                           "--rate", "50000", "--buffer-timeout", "0"]}),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    wait_until("latency percentiles of the running query", || {
        job = daemon.get(&format!("/jobs/{id}")).1;
        !job["latency-us"].is_null()
    });
    assert_eq!(job["state"], "RUNNING", "{job}");
    assert_eq!(job["name"], "nexmark-q1");
    let latency = &job["latency-us"];
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}");
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains(&format!("eddy_job_latency_microseconds{{job_id=\"{id}\",job_name=\"nexmark-q1\",quantile=\"0.99\"}}")),
        "{metrics}"
    );
    daemon.cli_ok(&["cancel", &id]);
    daemon.wait_state(&id, "CANCELED");

    // Any job measures latency per vertex with latency markers.
    let (status, answer) = daemon.post(
        "/jobs",
        json!({"job": "copy", "args": ["--source", "nexmark://?events=100000000&rate=20000",
                                       "--sink", "print:", "--latency-tracking-interval", "10ms"]}),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    // The Nexmark source is three source vertices (persons, auctions, bids), unioned,
    // then rebalanced into one print subtask: the print vertex hears from all three.
    let print_latency = |job: &Value| -> Vec<Value> {
        job["vertices"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "print")
            .and_then(|v| v["latency"].as_array().cloned())
            .unwrap_or_default()
    };
    wait_until(
        "latency markers of every source at the print vertex",
        || {
            job = daemon.get(&format!("/jobs/{id}")).1;
            let latency = print_latency(&job);
            latency.len() == 3
                && latency
                    .iter()
                    .all(|l| l["recent-markers"].as_u64().is_some_and(|n| n >= 5))
        },
    );
    let vertices = job["vertices"].as_array().unwrap();
    let edges = job["plan"]["edges"].as_array().unwrap();
    let is_source = |v: &Value| !edges.iter().any(|e| e["target"] == v["id"]);
    let sources: Vec<&Value> = vertices
        .iter()
        .filter(|v| is_source(v))
        .map(|v| &v["id"])
        .collect();
    assert_eq!(sources.len(), 3, "{job}");
    for vertex in vertices {
        // Only vertices with an input take markers; every vertex with one does.
        assert_eq!(
            vertex["latency"].as_array().unwrap().is_empty(),
            is_source(vertex),
            "{vertex}"
        );
    }
    for marker in print_latency(&job) {
        assert!(sources.contains(&&marker["source"]), "{marker}");
        let (p50, p99, max) = (
            marker["p50"].as_u64().unwrap(),
            marker["p99"].as_u64().unwrap(),
            marker["max"].as_u64().unwrap(),
        );
        // At 20 000 records/s a marker waits for a few buffer timeouts (1 ms) and
        // rings; seconds would mean markers are stuck.
        assert!(p50 <= p99 && p99 <= max && max < 5_000_000, "{marker}");
        assert!(marker["markers"].as_u64().unwrap() >= marker["recent-markers"].as_u64().unwrap());
    }
    let latency = &job["latency-us"];
    assert_eq!(latency["measured-by"], "latency markers", "{latency}");
    let (_, metrics) = daemon.get("/metrics");
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "eddy_operator_latency_microseconds{{job_id=\"{id}\",job_name=\"copy\",vertex=\"print\",operator=\"print\""
        )) && l.contains("quantile=\"0.99\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("eddy_operator_latency_markers_total{") && l.contains(&id)),
        "{metrics}"
    );
    daemon.cli_ok(&["cancel", &id]);
    daemon.wait_state(&id, "CANCELED");
}
