//! The CLI client of a running daemon: `eddy submit`, `list`, `status`, `savepoint`,
//! `stop`, `cancel`, talking to `--server` (default `http://127.0.0.1:8081`, or the
//! `EDDY_SERVER` environment variable) over the REST API.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::cli::Failure;

/// How to reach the daemon.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The daemon's address.
    #[arg(long, env = "EDDY_SERVER", default_value = "http://127.0.0.1:8081")]
    pub server: String,
    /// A file whose first line is the daemon's bearer token.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
}

/// The client commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Submit a built-in job to the daemon: `eddy submit wordcount --input ... --output
    /// ...` (the arguments `eddy run <job>` takes); prints the job id.
    Submit {
        /// Start from this savepoint (or checkpoint) folder.
        #[arg(long, value_name = "PATH")]
        from_savepoint: Option<PathBuf>,
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
        /// The job (`wordcount`, `copy`, `nexmark`, or one the daemon registered).
        job: String,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the daemon's jobs: id, state, name.
    List {
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A job's details as JSON (state, vertices and their counters).
    Status {
        /// The job id.
        id: String,
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Take a savepoint of a job; prints its folder once it is complete.
    Savepoint {
        /// The job id.
        id: String,
        /// A folder name inside the daemon's savepoints folder.
        #[arg(long)]
        target: Option<String>,
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a job: with --savepoint, cleanly after a savepoint (prints its folder; the
    /// job ends FINISHED); without, by cancelling it (it ends CANCELED).
    Stop {
        /// The job id.
        id: String,
        /// Take a savepoint and stop after it.
        #[arg(long)]
        savepoint: bool,
        /// A folder name inside the daemon's savepoints folder (with --savepoint).
        #[arg(long, requires = "savepoint")]
        target: Option<String>,
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a job.
    Cancel {
        /// The job id.
        id: String,
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// A connection to the daemon.
struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(args: &ClientArgs) -> Result<Self, Failure> {
        let token = match &args.auth_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        Failure::usage(format!("cannot read token file '{}': {e}", path.display()))
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let base = args.server.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(Failure::usage(format!(
                "--server '{base}': expected http://HOST:PORT"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Ok(Client { base, token, agent })
    }

    fn failed(&self, error: ureq::Error) -> Failure {
        Failure {
            status: 1,
            message: format!("cannot reach the daemon at {}: {error}", self.base),
        }
    }

    /// Sends a request; a non-2xx answer is a failure with the daemon's message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "PATCH" | "POST" => {
                let mut request = if method == "POST" {
                    self.agent.post(&url)
                } else {
                    self.agent.patch(&url)
                };
                if let Some(token) = &self.token {
                    request = request.header("Authorization", &format!("Bearer {token}"));
                }
                request
                    .header("Content-Type", "application/json")
                    .send(body.unwrap_or(Value::Null).to_string())
            }
            other => unreachable!("method {other}"),
        }
        .map_err(|e| self.failed(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.failed(e))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Err(Failure {
                status: 1,
                message: format!("the daemon answered {status}: {message}"),
            })
        }
    }

    /// Waits for a savepoint request to complete; returns its folder.
    fn wait_savepoint(&self, id: &str, request: &str) -> Result<String, Failure> {
        loop {
            let state = self.call("GET", &format!("/jobs/{id}/savepoints/{request}"), None)?;
            if state["status"]["id"] == "COMPLETED" {
                if let Some(location) = state["operation"]["location"].as_str() {
                    return Ok(location.to_string());
                }
                let cause = state["operation"]["failure-cause"]["message"]
                    .as_str()
                    .unwrap_or("unknown");
                return Err(Failure {
                    status: 1,
                    message: format!("savepoint failed: {cause}"),
                });
            }
            // Polling a remote daemon: a pause between questions, not a wait for a
            // result that could be awaited.
            wait_a_little();
        }
    }

    /// Waits until a job has ended; returns its state.
    fn wait_ended(&self, id: &str) -> Result<String, Failure> {
        loop {
            let job = self.call("GET", &format!("/jobs/{id}"), None)?;
            let state = job["state"].as_str().unwrap_or("").to_string();
            if matches!(state.as_str(), "FINISHED" | "CANCELED" | "FAILED") {
                return Ok(state);
            }
            wait_a_little();
        }
    }
}

/// 100 ms between two polls of the daemon.
fn wait_a_little() {
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let _ = never.recv_timeout(Duration::from_millis(100));
}

/// Runs a client command.
pub fn run(command: ClientCommand) -> Result<(), Failure> {
    match command {
        ClientCommand::Submit {
            from_savepoint,
            client,
            job,
            args,
        } => {
            let client = Client::new(&client)?;
            let from_savepoint = from_savepoint
                .map(|path| {
                    std::path::absolute(&path)
                        .map(|p| p.display().to_string())
                        .map_err(|e| Failure::usage(format!("'{}': {e}", path.display())))
                })
                .transpose()?;
            let answer = client.call(
                "POST",
                "/jobs",
                Some(json!({"job": job, "args": args, "from_savepoint": from_savepoint})),
            )?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
            Ok(())
        }
        ClientCommand::List { client } => {
            let client = Client::new(&client)?;
            let answer = client.call("GET", "/jobs", None)?;
            for job in answer["jobs"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<10}  {}",
                    job["id"].as_str().unwrap_or(""),
                    job["state"].as_str().unwrap_or(""),
                    job["name"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        ClientCommand::Status { id, client } => {
            let client = Client::new(&client)?;
            let answer = client.call("GET", &format!("/jobs/{id}"), None)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            Ok(())
        }
        ClientCommand::Savepoint { id, target, client } => {
            let client = Client::new(&client)?;
            let answer = client.call(
                "POST",
                &format!("/jobs/{id}/savepoints"),
                Some(json!({ "target-directory": target })),
            )?;
            let request = answer["request-id"].as_str().unwrap_or_default();
            println!("{}", client.wait_savepoint(&id, request)?);
            Ok(())
        }
        ClientCommand::Stop {
            id,
            savepoint,
            target,
            client,
        } => {
            let client = Client::new(&client)?;
            if savepoint {
                let answer = client.call(
                    "POST",
                    &format!("/jobs/{id}/stop"),
                    Some(json!({ "target-directory": target })),
                )?;
                let request = answer["request-id"].as_str().unwrap_or_default();
                println!("{}", client.wait_savepoint(&id, request)?);
            } else {
                client.call("PATCH", &format!("/jobs/{id}"), None)?;
            }
            let state = client.wait_ended(&id)?;
            eprintln!("eddy: job {id} {state}");
            Ok(())
        }
        ClientCommand::Cancel { id, client } => {
            let client = Client::new(&client)?;
            client.call("PATCH", &format!("/jobs/{id}"), None)?;
            Ok(())
        }
    }
}
