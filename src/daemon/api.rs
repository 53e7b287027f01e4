//! The REST API (docs/rest-api.md): Apache Flink's paths and shapes where they fit,
//! JSON errors with the right status codes, Prometheus metrics, the web UI's assets.
//!
//! hyper serves HTTP/1.1 (keep-alive, bounded bodies) on a small tokio runtime whose
//! threads are the control plane's (never a data core's executor); each request is
//! answered on a blocking-pool thread, since starting a job or taking a lock on a job's
//! monitor is synchronous work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use serde_json::{json, Value};

use super::manager::{ApiError, ManagedJob, Manager, SavepointState};
use super::ui;
use crate::prelude::*;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY: usize = 64 * 1024;

/// The HTTP server: a tokio runtime of `threads` threads and its accept loop.
pub(crate) struct HttpServer {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    addr: SocketAddr,
}

impl HttpServer {
    pub(crate) fn start(
        addr: SocketAddr,
        threads: usize,
        manager: Arc<Manager>,
        token: Option<String>,
        ready: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on http://{addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on http://{addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on http://{addr}: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(threads.max(1) * 4)
            .thread_name("eddy-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the HTTP threads: {e}"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| format!("cannot listen on http://{addr}: {e}"))?
        };
        let api = Arc::new(Api {
            manager,
            token,
            ready,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(accept_loop(listener, api, stopped));
        Ok(HttpServer {
            runtime: Some(runtime),
            stop: Some(stop),
            addr,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until told to stop; each is served on a task of its own.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    continue;
                }
            },
        };
        // The head and the body of a response go out without waiting for ACKs.
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(api.serve(request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
}

/// What the routes need of a request.
struct Call {
    method: hyper::Method,
    path: String,
    query: String,
    authorization: Option<String>,
    /// The body, or why it cannot be had (too large, unreadable).
    body: Result<Bytes, ApiError>,
}

/// An answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn error(error: &ApiError) -> Self {
        Reply::json(
            error.status,
            &json!({"errors": [error.message], "message": error.message}),
        )
    }
}

struct Api {
    manager: Arc<Manager>,
    token: Option<String>,
    ready: Arc<AtomicBool>,
}

impl Api {
    async fn serve(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let too_large = || ApiError::new(413, format!("the body is over {MAX_BODY} bytes"));
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = if declared.is_some_and(|n| n > MAX_BODY) {
            Err(too_large())
        } else {
            match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
                Err(error) => Err(ApiError::bad_request(format!(
                    "cannot read the body: {error}"
                ))),
            }
        };
        let call = Call {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            authorization: parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        };
        let api = Arc::clone(&self);
        let reply = tokio::task::spawn_blocking(move || match api.route(&call) {
            Ok(reply) => reply,
            Err(error) => Reply::error(&error),
        })
        .await
        .unwrap_or_else(|error| {
            Reply::error(&ApiError::new(500, format!("the request failed: {error}")))
        });
        hyper::Response::builder()
            .status(reply.status)
            .header(hyper::header::CONTENT_TYPE, reply.content_type)
            .body(Full::new(Bytes::from(reply.body)))
            .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
    }

    fn route(&self, call: &Call) -> Result<Reply, ApiError> {
        use hyper::Method;
        let (path, query) = (call.path.as_str(), call.query.as_str());
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = call.method.clone();
        let mutating = matches!(
            method,
            Method::POST | Method::PATCH | Method::DELETE | Method::PUT
        );
        if mutating {
            self.authorize(call.authorization.as_deref())?;
        }
        let body = if mutating {
            parse_body(call.body.as_ref().map_err(Clone::clone)?)?
        } else {
            Value::Null
        };
        let m = &self.manager;
        match (&method, segments.as_slice()) {
            (&Method::GET, []) => Ok(asset("text/html; charset=utf-8", ui::INDEX_HTML)),
            (&Method::GET, ["app.js"]) => Ok(asset("text/javascript; charset=utf-8", ui::APP_JS)),
            (&Method::GET, ["app.css"]) => Ok(asset("text/css; charset=utf-8", ui::APP_CSS)),
            (&Method::GET, ["healthz"]) => Ok(text(200, "ok\n")),
            (&Method::GET, ["readyz"]) => {
                if self.ready.load(Ordering::Acquire) {
                    Ok(text(200, "ready\n"))
                } else {
                    Ok(text(503, "resuming jobs\n"))
                }
            }
            (&Method::GET, ["overview"]) => Ok(Reply::json(200, &self.overview())),
            (&Method::GET, ["metrics"]) => Ok(Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: prometheus(m).into_bytes(),
            }),
            (&Method::GET, ["jobs"]) | (&Method::GET, ["jobs", "overview"]) => {
                let mut jobs: Vec<Value> = m.jobs().iter().map(|job| job_summary(m, job)).collect();
                jobs.extend(m.past_jobs().iter().map(past_summary));
                Ok(Reply::json(200, &json!({ "jobs": jobs })))
            }
            (&Method::POST, ["jobs"]) => self.submit(&body),
            (&Method::GET, ["jobs", id]) => match (m.job(id), m.past_job(id)) {
                (Ok(job), _) => Ok(Reply::json(200, &job_detail(m, &job))),
                (Err(_), Some(record)) => Ok(Reply::json(200, &past_detail(&record))),
                (Err(error), None) => Err(error),
            },
            (&Method::PATCH | &Method::DELETE, ["jobs", id]) => {
                let job = m.job(id)?;
                if job.state().is_terminal() {
                    return Err(ApiError::new(
                        409,
                        format!("job '{id}' has ended ({})", job.state()),
                    ));
                }
                job.monitor.cancel();
                Ok(Reply::json(202, &json!({})))
            }
            (&Method::GET, ["jobs", id, "checkpoints"]) => {
                Ok(Reply::json(200, &checkpoints(&*m.job(id)?)))
            }
            (&Method::GET, ["jobs", id, "exceptions"]) => {
                Ok(Reply::json(200, &exceptions(&*m.job(id)?)))
            }
            (&Method::POST, ["jobs", id, "savepoints"]) | (&Method::POST, ["jobs", id, "stop"]) => {
                let job = m.job(id)?;
                let target = match body.get("target-directory") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(name)) => Some(name.as_str()),
                    Some(_) => {
                        return Err(ApiError::bad_request("'target-directory' must be a string"))
                    }
                };
                let stop = segments[2] == "stop";
                let request = m.savepoint(&job, target, stop)?;
                Ok(Reply::json(202, &json!({ "request-id": request })))
            }
            (&Method::GET, ["jobs", id, "savepoints", request]) => {
                let job = m.job(id)?;
                let state = job.savepoint_state(request).ok_or_else(|| {
                    ApiError::not_found(format!("unknown savepoint request '{request}'"))
                })?;
                Ok(Reply::json(200, &savepoint_status(&state)))
            }
            (&Method::GET, ["jobs", id, "preview"]) => {
                let job = m.job(id)?;
                let preview = job.preview.as_ref().ok_or_else(|| {
                    ApiError::not_found(format!(
                        "job '{id}' has no result preview (no print: sink)"
                    ))
                })?;
                let rows = query_param(query, "rows")
                    .map(|v| {
                        v.parse::<usize>()
                            .map_err(|_| ApiError::bad_request(format!("rows={v}: not a number")))
                    })
                    .transpose()?
                    .unwrap_or(100)
                    .clamp(1, 1000);
                Ok(Reply::json(200, &json!(preview.snapshot(rows))))
            }
            (_, [] | ["app.js" | "app.css" | "healthz" | "readyz" | "overview" | "metrics"])
            | (_, ["jobs"])
            | (_, ["jobs", _])
            | (_, ["jobs", _, "checkpoints" | "exceptions" | "savepoints" | "stop" | "preview"])
            | (_, ["jobs", _, "savepoints", _]) => Err(ApiError::new(
                405,
                format!("{} is not allowed on {path}", method),
            )),
            _ => Err(ApiError::not_found(format!("no such path: {path}"))),
        }
    }

    fn authorize(&self, given: Option<&str>) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        match given.map(str::trim).and_then(|v| v.strip_prefix("Bearer ")) {
            Some(given) if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(401, "wrong bearer token")),
            None => Err(ApiError::new(
                401,
                "this daemon needs 'Authorization: Bearer <token>' on POST, PATCH and DELETE",
            )),
        }
    }

    fn overview(&self) -> Value {
        let jobs = self.manager.jobs();
        let count = |state: JobStatus| jobs.iter().filter(|j| j.state() == state).count();
        json!({
            "jobs-running": count(JobStatus::Running) + count(JobStatus::Restarting),
            "jobs-finished": count(JobStatus::Finished),
            "jobs-cancelled": count(JobStatus::Canceled),
            "jobs-failed": count(JobStatus::Failed),
            "eddy-version": env!("CARGO_PKG_VERSION"),
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "role": "leader",
            "started": self.manager.started_ms,
            "job-names": self.manager.job_names(),
        })
    }

    fn submit(&self, body: &Value) -> Result<Reply, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
        let job = object
            .get("job")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("'job' (a string) is missing"))?;
        let args = match object.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::bad_request("'args' must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(ApiError::bad_request("'args' must be an array of strings")),
        };
        let from_savepoint = match object.get("from_savepoint") {
            None | Some(Value::Null) => None,
            Some(Value::String(path)) => Some(std::path::PathBuf::from(path)),
            Some(_) => return Err(ApiError::bad_request("'from_savepoint' must be a string")),
        };
        if let Some(unknown) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "job" | "args" | "from_savepoint"))
        {
            return Err(ApiError::bad_request(format!(
                "unknown field '{unknown}' (expected job, args, from_savepoint)"
            )));
        }
        let id = self.manager.submit(job, args, from_savepoint)?;
        Ok(Reply::json(202, &json!({ "id": id })))
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Reply {
    Reply {
        status: 200,
        content_type,
        body: body.as_bytes().to_vec(),
    }
}

fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
    }
}

/// Parses a JSON body (an empty body is `null`).
fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn duration_ms(job: &ManagedJob, now: i64) -> i64 {
    job.end_ms().unwrap_or(now) - job.monitor.start_time_ms()
}

fn job_summary(m: &Manager, job: &ManagedJob) -> Value {
    json!({
        "id": job.id,
        "name": job.name,
        "state": job.state().name(),
        "start-time": job.monitor.start_time_ms(),
        "end-time": job.end_ms(),
        "duration": duration_ms(job, m.now_ms()),
    })
}

/// A job that ended under an earlier daemon, from its record.
fn past_summary(record: &super::state::JobRecord) -> Value {
    json!({
        "id": record.id,
        "name": record.job,
        "state": record.state,
        "start-time": record.submitted_ms,
        "end-time": null,
        "duration": null,
    })
}

fn past_detail(record: &super::state::JobRecord) -> Value {
    json!({
        "id": record.id,
        "name": record.job,
        "job": record.job,
        "args": record.args,
        "state": record.state,
        "start-time": record.submitted_ms,
        "end-time": null,
        "duration": null,
        "parallelism": null,
        "restarts": 0,
        "resumed": record.resumed,
        "failure": record.failure,
        "vertices": [],
        "plan": {"edges": []},
        "latency-us": null,
        "preview": false,
        "latest-checkpoint": record.latest_checkpoint.as_ref().map(|p| p.display().to_string()),
        "previous-daemon": true,
    })
}

fn job_detail(m: &Manager, job: &ManagedJob) -> Value {
    let record = job.record();
    let rates = job.rates();
    let graph = job.monitor.graph();
    let markers = job.latency();
    let vertices: Vec<Value> = graph
        .vertices
        .iter()
        .map(|v| {
            let r = rates.get(v.id).cloned().unwrap_or_default();
            let latency: Vec<Value> = markers
                .iter()
                .filter(|l| l.vertex == v.id)
                .map(|l| marker_latency_entry(graph, l))
                .collect();
            json!({
                "id": v.id,
                "name": v.name,
                "operators": v.operators,
                "parallelism": v.parallelism,
                "metrics": {
                    "read-records": r.records_in,
                    "write-records": r.records_out,
                    "records-in-per-second": r.in_per_second,
                    "records-out-per-second": r.out_per_second,
                    "backpressure-ratio": r.backpressure,
                },
                "latency": latency,
            })
        })
        .collect();
    let edges: Vec<Value> = graph
        .edges
        .iter()
        .map(|e| json!({"source": e.source, "target": e.target, "ship_strategy": e.ship_strategy}))
        .collect();
    // Measured on every record by the jobs that do (Nexmark), else by latency markers.
    let latency = match job.stats.as_ref().and_then(|s| s.latency()) {
        Some(l) => Some(json!({
            "p50": l.p50_us, "p99": l.p99_us, "p999": l.p999_us, "max": l.max_us,
            "measured-by": "records",
        })),
        None => job.marker_latency().map(|l| {
            json!({
                "p50": l.p50_us, "p99": l.p99_us, "p999": l.p999_us, "max": l.max_us,
                "measured-by": "latency markers",
                "source": graph.vertices.get(l.source_vertex).map(|s| s.name.as_str()),
                "vertex": graph.vertices.get(l.vertex).map(|s| s.name.as_str()),
            })
        }),
    };
    let checkpoints = job.monitor.checkpoints();
    json!({
        "id": job.id,
        "name": job.name,
        "job": record.job,
        "args": record.args,
        "state": job.state().name(),
        "start-time": job.monitor.start_time_ms(),
        "end-time": job.end_ms(),
        "duration": duration_ms(job, m.now_ms()),
        "parallelism": job.parallelism,
        "restarts": checkpoints.restarts,
        "resumed": record.resumed,
        "failure": record.failure,
        "vertices": vertices,
        "plan": {"edges": edges},
        "latency-us": latency,
        "preview": job.preview.is_some(),
    })
}

/// One (source vertex → vertex) latency of a vertex, in microseconds.
fn marker_latency_entry(graph: &JobGraphInfo, l: &VertexLatency) -> Value {
    json!({
        "source": l.source_vertex,
        "source-name": graph.vertices.get(l.source_vertex).map(|s| s.name.as_str()),
        "markers": l.markers,
        "recent-markers": l.recent,
        "p50": l.p50_us,
        "p95": l.p95_us,
        "p99": l.p99_us,
        "p999": l.p999_us,
        "max": l.max_us,
        "mean": l.mean_us,
    })
}

fn checkpoint_entry(c: &CompletedCheckpoint) -> Value {
    json!({
        "id": c.id,
        "status": "COMPLETED",
        "end_to_end_duration": c.duration.as_millis() as u64,
        "state_size": c.bytes,
        "external_path": c.path.display().to_string(),
        "latest_ack_timestamp": c.timestamp_ms,
    })
}

fn checkpoints(job: &ManagedJob) -> Value {
    let stats = job.monitor.checkpoints();
    let history: Vec<Value> = job
        .monitor
        .checkpoint_history()
        .iter()
        .rev()
        .map(checkpoint_entry)
        .collect();
    json!({
        "counts": {
            "completed": stats.completed,
            "failed": stats.failed,
            "restored": u64::from(stats.restored_from.is_some()),
            "total": stats.completed + stats.failed,
        },
        "latest": {
            "completed": stats.last.as_ref().map(checkpoint_entry),
            "restored": stats.restored_from.map(|id| json!({"id": id})),
        },
        "history": history,
    })
}

fn exceptions(job: &ManagedJob) -> Value {
    let all = job.monitor.exceptions();
    let last = all.last();
    json!({
        "root-exception": last.map(|e| e.message.clone()),
        "timestamp": last.map(|e| e.timestamp_ms),
        "all-exceptions": all
            .iter()
            .map(|e| json!({"exception": e.message, "timestamp": e.timestamp_ms, "restarted": e.restarted}))
            .collect::<Vec<_>>(),
        "restarts": job.monitor.checkpoints().restarts,
    })
}

fn savepoint_status(state: &SavepointState) -> Value {
    match state {
        SavepointState::InProgress => json!({"status": {"id": "IN_PROGRESS"}}),
        SavepointState::Completed(path) => json!({
            "status": {"id": "COMPLETED"},
            "operation": {"location": path.display().to_string()},
        }),
        SavepointState::Failed(message) => json!({
            "status": {"id": "COMPLETED"},
            "operation": {"failure-cause": {"message": message}},
        }),
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/metrics` in Prometheus' text format (0.0.4).
fn prometheus(m: &Manager) -> String {
    use std::fmt::Write;
    let jobs = m.jobs();
    let mut out = String::with_capacity(4096);
    let help = |out: &mut String, name: &str, kind: &str, text: &str| {
        let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
    };
    help(
        &mut out,
        "eddy_jobs",
        "gauge",
        "Jobs of this daemon by state.",
    );
    for state in [
        JobStatus::Running,
        JobStatus::Restarting,
        JobStatus::Finished,
        JobStatus::Canceled,
        JobStatus::Failed,
    ] {
        let n = jobs.iter().filter(|j| j.state() == state).count();
        let _ = writeln!(out, "eddy_jobs{{state=\"{}\"}} {n}", state.name());
    }
    let job_labels = |job: &ManagedJob| {
        format!(
            "job_id=\"{}\",job_name=\"{}\"",
            label(&job.id),
            label(&job.name)
        )
    };
    type JobMetric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ManagedJob) -> Option<f64>,
    );
    let per_job: [JobMetric; 6] = [
        (
            "eddy_job_uptime_seconds",
            "gauge",
            "Seconds the job has run (until it ended).",
            |j| match j.end_ms() {
                Some(end) => Some((end - j.monitor.start_time_ms()).max(0) as f64 / 1000.0),
                None => Some(j.monitor.metrics().elapsed.as_secs_f64()),
            },
        ),
        (
            "eddy_job_restarts_total",
            "counter",
            "Restarts after failures.",
            |j| Some(f64::from(j.monitor.checkpoints().restarts)),
        ),
        (
            "eddy_checkpoints_completed_total",
            "counter",
            "Completed checkpoints.",
            |j| Some(j.monitor.checkpoints().completed as f64),
        ),
        (
            "eddy_checkpoints_failed_total",
            "counter",
            "Failed or abandoned checkpoints.",
            |j| Some(j.monitor.checkpoints().failed as f64),
        ),
        (
            "eddy_checkpoint_last_duration_seconds",
            "gauge",
            "Duration of the newest checkpoint.",
            |j| {
                j.monitor
                    .checkpoints()
                    .last
                    .map(|c| c.duration.as_secs_f64())
            },
        ),
        (
            "eddy_checkpoint_last_size_bytes",
            "gauge",
            "State size of the newest checkpoint.",
            |j| j.monitor.checkpoints().last.map(|c| c.bytes as f64),
        ),
    ];
    for (name, kind, text, value) in per_job {
        help(&mut out, name, kind, text);
        for job in &jobs {
            if let Some(v) = value(job) {
                let _ = writeln!(out, "{name}{{{}}} {v}", job_labels(job));
            }
        }
    }
    help(
        &mut out,
        "eddy_job_latency_microseconds",
        "gauge",
        "End-to-end latency percentiles (hdrhistogram) of jobs that measure it.",
    );
    for job in &jobs {
        if let Some(l) = job.stats.as_ref().and_then(|s| s.latency()) {
            for (q, v) in [
                ("0.5", l.p50_us),
                ("0.99", l.p99_us),
                ("0.999", l.p999_us),
                ("1", l.max_us),
            ] {
                let _ = writeln!(
                    out,
                    "eddy_job_latency_microseconds{{{},quantile=\"{q}\"}} {v}",
                    job_labels(job)
                );
            }
        }
    }
    type VertexMetric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&super::manager::VertexRates) -> f64,
    );
    let per_vertex: [VertexMetric; 5] = [
        (
            "eddy_vertex_records_in_total",
            "counter",
            "Records into the vertex.",
            |r| r.records_in as f64,
        ),
        (
            "eddy_vertex_records_out_total",
            "counter",
            "Records out of the vertex.",
            |r| r.records_out as f64,
        ),
        (
            "eddy_vertex_records_in_per_second",
            "gauge",
            "Records in per second, last 5 s.",
            |r| r.in_per_second,
        ),
        (
            "eddy_vertex_records_out_per_second",
            "gauge",
            "Records out per second, last 5 s.",
            |r| r.out_per_second,
        ),
        (
            "eddy_vertex_backpressure_ratio",
            "gauge",
            "Share of time blocked on a full output ring, last 5 s.",
            |r| r.backpressure,
        ),
    ];
    let rates: Vec<_> = jobs.iter().map(|job| job.rates()).collect();
    for (name, kind, text, value) in per_vertex {
        help(&mut out, name, kind, text);
        for (job, rates) in jobs.iter().zip(&rates) {
            for (vertex, rate) in job.monitor.graph().vertices.iter().zip(rates) {
                let _ = writeln!(
                    out,
                    "{name}{{{},vertex=\"{}\"}} {}",
                    job_labels(job),
                    label(&vertex.name),
                    value(rate)
                );
            }
        }
    }
    // Latency markers: per operator (the operators fused in a vertex are calls of one
    // task and share its figure) and source vertex; both families in one pass.
    let (mut quantiles, mut totals) = (String::new(), String::new());
    for job in &jobs {
        let graph = job.monitor.graph();
        for l in job.latency() {
            let (Some(vertex), Some(source)) = (
                graph.vertices.get(l.vertex),
                graph.vertices.get(l.source_vertex),
            ) else {
                continue;
            };
            for operator in &vertex.operators {
                let labels = format!(
                    "{},vertex=\"{}\",operator=\"{}\",source=\"{}\"",
                    job_labels(job),
                    label(&vertex.name),
                    label(operator),
                    label(&source.name),
                );
                let _ = writeln!(
                    totals,
                    "eddy_operator_latency_markers_total{{{labels}}} {}",
                    l.markers
                );
                if l.recent == 0 {
                    continue;
                }
                for (q, v) in [
                    ("0.5", l.p50_us),
                    ("0.95", l.p95_us),
                    ("0.99", l.p99_us),
                    ("0.999", l.p999_us),
                    ("1", l.max_us),
                ] {
                    let _ = writeln!(
                        quantiles,
                        "eddy_operator_latency_microseconds{{{labels},quantile=\"{q}\"}} {v}"
                    );
                }
            }
        }
    }
    help(
        &mut out,
        "eddy_operator_latency_microseconds",
        "gauge",
        "Travel time of latency markers from a source to the operator, last 10-20 s (jobs run with --latency-tracking-interval).",
    );
    out.push_str(&quantiles);
    help(
        &mut out,
        "eddy_operator_latency_markers_total",
        "counter",
        "Latency markers the operator received from the source.",
    );
    out.push_str(&totals);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_and_labels() {
        assert_eq!(query_param("rows=5&x=1", "rows"), Some("5"));
        assert_eq!(query_param("x=1", "rows"), None);
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
