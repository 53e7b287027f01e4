//! The daemon embedded in an application (`eddy::daemon::Daemon`): a job registered in
//! code is submitted through the REST API, runs and finishes; its result (computed
//! here independently) arrives; bad arguments get the factory's message as a 400.

// Tests use the OS clock for deadlines only.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy::cli::{Failure, Prepared};
use eddy::daemon::{Daemon, JobContext, Registry, ServeConfig};
use eddy::prelude::*;
use serde_json::{json, Value};

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = match method {
        "GET" => agent.get(url).call(),
        _ => agent
            .post(url)
            .send(body.unwrap_or(Value::Null).to_string()),
    }
    .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn a_registered_job_runs_in_the_embedded_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sums: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = Arc::clone(&sums);
    let mut jobs = Registry::empty();
    jobs.register("squares", move |args: &[String], context: &JobContext| {
        let up_to: u64 = match args {
            [flag, value] if flag == "--up-to" => value
                .parse()
                .map_err(|_| Failure::usage(format!("'{value}' is not a number")))?,
            _ => return Err(Failure::usage("expected --up-to N")),
        };
        let mut config = JobConfig::default();
        context.configure(&mut config);
        assert_eq!(
            config.checkpoint.dir.as_deref(),
            Some(context.checkpoint_dir.as_path())
        );
        let env = Env::new(config);
        let sums = Arc::clone(&seen);
        env.from_iter(1..=up_to)
            .map(|x| x * x)
            .key_by(|_| 0u8)
            .reduce(|a, b| a + b)
            .sink_fn(move |sum| sums.lock().unwrap().push(sum));
        Ok(Prepared::new(env, "squares"))
    });
    let daemon = Daemon::start(
        ServeConfig {
            state_dir: dir.path().to_path_buf(),
            http: "127.0.0.1:0".parse().unwrap(),
            cores: None,
            auth_token: None,
            http_threads: 2,
        },
        jobs,
    )
    .unwrap();
    let url = format!("http://{}", daemon.addr());

    let (status, answer) = call(
        "POST",
        &format!("{url}/jobs"),
        Some(json!({"job": "squares", "args": ["--up-to", "x"]})),
    );
    assert_eq!(status, 400);
    assert_eq!(answer["message"], "'x' is not a number");
    let (status, answer) = call(
        "POST",
        &format!("{url}/jobs"),
        Some(json!({"job": "wordcount"})),
    );
    assert_eq!(status, 400, "not registered here: {answer}");

    let (status, answer) = call(
        "POST",
        &format!("{url}/jobs"),
        Some(json!({"job": "squares", "args": ["--up-to", "1000"]})),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = call("GET", &format!("{url}/jobs/{id}"), None);
        if job["state"] == "FINISHED" {
            assert_eq!(job["name"], "squares");
            break;
        }
        assert!(Instant::now() < until, "the job did not finish: {job}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
    // Streaming reduce: the last update is the sum of squares 1..=1000.
    let expected: u64 = (1..=1000u64).map(|x| x * x).sum();
    assert_eq!(sums.lock().unwrap().last().copied(), Some(expected));
    daemon.shutdown();
}
