//! The web UI end to end in a real headless browser: starts `eddy serve` on a temporary
//! state folder and a free loopback port, submits an unbounded `copy` job (Nexmark
//! generator into a `print:` sink, so it has a result preview) through `POST /jobs`, then
//! runs `node tests/ui/browser.mjs`, which drives Debian's chromium through
//! playwright-core: it sees the job in the list, its DAG and a vertex's records-out
//! number change, the preview's rows, clicks Stop and sees the job FINISHED with its
//! savepoint's location (see tests/ui/README.md). The test then checks through REST that
//! the job really ended FINISHED.
//!
//! Needs `node` (20+), `/usr/bin/chromium` (or `CHROMIUM`) and tests/ui/node_modules: when
//! that folder is missing the test runs `npm ci --prefix tests/ui` itself (the npm
//! registry must be reachable then; `.ci/run` runs it beforehand). A missing node,
//! chromium or npm fails the test with the command that fixes it: it never skips.
//! Screenshots of every step go to `$CARGO_TARGET_TMPDIR/ui-browser/`.

// Tests use the OS clock only for deadlines (a stuck process must fail the test).
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
/// How long the daemon may take to answer `/healthz`, and a job to start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the browser script may run (it has its own per-step deadlines).
const BROWSER_DEADLINE: Duration = Duration::from_secs(240);
/// How long `npm ci` may take.
const NPM_DEADLINE: Duration = Duration::from_secs(300);

/// `eddy serve` as a child process, killed when dropped.
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(state_dir: &Path) -> Daemon {
        let port = free_port();
        std::fs::create_dir_all(state_dir).expect("create the state folder");
        let log = state_dir.with_extension("log");
        let child = Command::new(EDDY)
            .args(["serve", "--state-dir"])
            .arg(state_dir)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env_remove("EDDY_LOG")
            // The job's print: sink writes ~20,000 lines a second; the test reads them
            // through the preview, not stdout.
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the daemon's log"))
            .spawn()
            .expect("start eddy serve");
        Daemon { child, port, log }
    }

    /// The daemon's stderr so far, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Fails the test when the daemon has exited.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll eddy serve") {
            panic!("eddy serve exited ({status}); its stderr:\n{}", self.log());
        }
    }

    /// Waits until `GET /healthz` answers 200.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            self.assert_alive();
            if let Ok((200, _)) = http(self.port, "GET", "/healthz", None) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "eddy serve did not answer GET /healthz on port {} within {START_DEADLINE:?}; its stderr:\n{}",
                self.port,
                self.log()
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// `GET /jobs/{id}`'s `state`.
    fn job_state(&self, id: &str) -> String {
        let (status, body) = http(self.port, "GET", &format!("/jobs/{id}"), None)
            .unwrap_or_else(|e| panic!("GET /jobs/{id}: {e}"));
        assert_eq!(status, 200, "GET /jobs/{id}: {body}");
        let job: serde_json::Value = serde_json::from_str(&body).expect("job JSON");
        job["state"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// One HTTP/1.1 request on a fresh connection; answers the status code and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok((
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    ))
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `command` to its end within `deadline` (killed after it), stdout and stderr
/// into `log`; answers its status and output.
fn run_with_deadline(
    command: &mut Command,
    log: &Path,
    deadline: Duration,
    what: &str,
) -> (ExitStatus, String) {
    let out = File::create(log).expect("create a log file");
    let mut child = command
        .stdout(out.try_clone().expect("clone the log file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll a child") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not end within {deadline:?}; its output:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// `program --version` works, or the test fails with `fix`.
fn require(program: &str, fix: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`{program} --version` failed ({}): {fix}", out.status),
        Err(e) => panic!("the browser test needs `{program}` ({e}): {fix}"),
    }
}

#[test]
fn web_ui_shows_a_running_job_and_stops_it() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "the browser test needs Debian's chromium at {} (as root: apt-get install -y chromium; or set CHROMIUM)",
        chromium.display()
    );
    require(
        "node",
        "install Node.js 20+ (apt-get install -y nodejs npm)",
    );
    let work = tempfile::tempdir().expect("temporary folder");
    if !ui
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        require(
            "npm",
            "install npm (apt-get install -y npm), then run `npm ci --prefix tests/ui`",
        );
        let (status, output) = run_with_deadline(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&ui)
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
            &work.path().join("npm.log"),
            NPM_DEADLINE,
            "npm ci --prefix tests/ui",
        );
        assert!(
            status.success(),
            "`npm ci --prefix tests/ui` failed ({status}); run it by hand with the npm registry reachable:\n{output}"
        );
    }

    let mut daemon = Daemon::start(&work.path().join("state"));
    daemon.wait_healthy();

    let submit = r#"{"job":"copy","args":["--source","nexmark://?events=100000000&rate=20000","--sink","print:?format=csv","--latency-tracking-interval","50ms"]}"#;
    let (status, body) = http(daemon.port, "POST", "/jobs", Some(submit)).expect("POST /jobs");
    assert_eq!(status, 202, "POST /jobs answered {status}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("POST /jobs JSON");
    let id = answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_string();
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        daemon.assert_alive();
        let state = daemon.job_state(&id);
        if state == "RUNNING" {
            break;
        }
        assert!(
            !["FINISHED", "CANCELED", "FAILED"].contains(&state.as_str()),
            "the job ended {state} before the browser saw it"
        );
        assert!(
            Instant::now() < deadline,
            "the job is still {state} after {START_DEADLINE:?}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }

    // Screenshots of this run only.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("create the screenshot folder");
    let (status, output) = run_with_deadline(
        Command::new("node")
            .arg(ui.join("browser.mjs"))
            .current_dir(&ui)
            .env("EDDY_URL", format!("http://127.0.0.1:{}", daemon.port))
            .env("EDDY_JOB", &id)
            .env("EDDY_SCREENSHOT", shots.join("job.png"))
            .env("CHROMIUM", &chromium),
        &work.path().join("browser.log"),
        BROWSER_DEADLINE,
        "node tests/ui/browser.mjs",
    );
    println!("{output}");
    assert!(
        status.success(),
        "the browser test failed ({status}); screenshots in {}:\n{output}\n--- eddy serve's stderr:\n{}",
        shots.display(),
        daemon.log()
    );
    assert_eq!(
        daemon.job_state(&id),
        "FINISHED",
        "the UI showed FINISHED but REST disagrees"
    );
}
