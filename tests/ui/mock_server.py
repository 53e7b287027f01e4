#!/usr/bin/env python3
"""A stand-in for `eddy serve` to work on the web UI without building the daemon.

Serves the UI's assets from src/daemon/ui (read on every request: edit, reload) and
canned JSON following docs/rest-api.md, with numbers that move over time: counters grow
with each job's rate, checkpoints complete every few seconds, a stopped job takes a
savepoint and ends FINISHED, a cancelled one CANCELED.

    python3 tests/ui/mock_server.py [--port 8081 | --http HOST:PORT] [--state-dir DIR]
                                    [--auth-token T] [--no-seed]

It starts with a few jobs (a running `copy` with a preview, a running Nexmark query with
latency, a finished and a failed one) and prints `job <id> <name>` for each on stdout
before `listening on http://127.0.0.1:<port>`, so a script can drive it:

    EDDY_URL=http://127.0.0.1:8081 EDDY_JOB=<id of copy> node tests/ui/browser.mjs

With `--port 0` it picks a free port. With `--auth-token T`, POST/PATCH/DELETE need
`Authorization: Bearer T` (401 otherwise), as the daemon's `--auth-token-file`.
Python 3 standard library only.
"""

import argparse
import json
import math
import os
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "daemon", "ui")
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
BUILT_IN = {"wordcount", "copy", "nexmark"}
STATE_DIR = "/var/lib/eddy"
LOCK = threading.Lock()
STARTED = int(time.time() * 1000)


def now_ms():
    return int(time.time() * 1000)


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Job:
    """A simulated job: a small DAG whose counters follow a rate with some noise."""

    counter = 0

    def __init__(self, name, args, state="RUNNING", age_s=0.0):
        Job.counter += 1
        self.id = "%016x" % random.getrandbits(64)
        self.name = name
        self.job = name
        self.args = list(args)
        self.state = state
        self.start = now_ms() - int(age_s * 1000)
        self.end = None
        self.restarts = 0
        self.failure = None
        self.exceptions = []
        self.checkpoints = []  # newest last
        self.restored = None
        self.savepoints = {}  # rid -> dict(status, location, done_at, stop)
        self.sp_count = 0
        self.rate = 20000.0
        self.parallelism = 2
        m = re.search(r"rate=(\d+)", " ".join(self.args))
        if m:
            self.rate = float(m.group(1))
        if "--parallelism" in self.args:
            try:
                self.parallelism = int(self.args[self.args.index("--parallelism") + 1])
            except (ValueError, IndexError):
                pass
        self.checkpointing = "--checkpointing" in self.args
        p = self.parallelism
        if name == "nexmark" and ("q3" in self.args or "q8" in self.args):
            # A join: two branches from the source meet again.
            self.vertices = [
                ("nexmark source", ["nexmark source"], p, 1.0),
                ("persons -> filter state", ["persons", "filter state"], p, 0.02),
                ("auctions -> filter category", ["auctions", "filter category"], p, 0.1),
                ("incremental join", ["incremental join"], p, 0.5),
                ("print sink", ["print sink"], 1, 0.0),
            ]
            self.edges = [(0, 1, "FORWARD"), (0, 2, "FORWARD"), (1, 3, "HASH"), (2, 3, "HASH"),
                          (3, 4, "REBALANCE")]
            self.latency = True
        elif name == "nexmark":
            self.vertices = [
                ("nexmark source -> bids -> currency conversion", ["nexmark source", "bids", "currency conversion"], p, 1.0),
                ("window aggregate (10 s tumbling)", ["window aggregate (10 s tumbling)"], p, 0.05),
                ("top-N -> format", ["top-N", "format"], 1, 0.05),
                ("print sink", ["print sink"], 1, 0.0),
            ]
            self.edges = [(0, 1, "HASH"), (1, 2, "REBALANCE"), (2, 3, "FORWARD")]
            self.latency = True
        elif name == "wordcount":
            self.vertices = [
                ("file source -> split", ["file source", "split"], p, 6.0),
                ("count", ["count"], p, 0.1),
                ("file sink", ["file sink"], p, 0.0),
            ]
            self.edges = [(0, 1, "HASH"), (1, 2, "FORWARD")]
            self.latency = False
        elif any(a.startswith("nexmark://") for a in self.args):
            # As the daemon draws `copy --source nexmark://...`: a source per table, unions.
            self.vertices = [
                ("nexmark_person -> map", ["nexmark_person", "map"], p, 0.02),
                ("nexmark_auction -> map", ["nexmark_auction", "map"], p, 0.06),
                ("nexmark_bid -> map", ["nexmark_bid", "map"], p, 0.92),
                ("union", ["union"], p, 1.0),
                ("union", ["union"], p, 1.0),
                ("print", ["print"], 1, 0.0),
            ]
            self.edges = [(0, 3, "FORWARD"), (1, 3, "FORWARD"), (3, 4, "FORWARD"), (2, 4, "FORWARD"),
                          (4, 5, "REBALANCE")]
            self.latency = False
        else:
            self.vertices = [
                ("file source", ["file source"], p, 1.0),
                ("print sink", ["print sink"], 1, 0.0),
            ]
            self.edges = [(0, 1, "REBALANCE")]
            self.latency = False
        self.preview = any(a.startswith("print:") for a in self.args) or name == "nexmark"
        # Counters: integrated as time passes.
        self.last_tick = time.time()
        self.records_in = [0.0] * len(self.vertices)
        self.records_out = [0.0] * len(self.vertices)
        self.rates_in = [0.0] * len(self.vertices)
        self.rates_out = [0.0] * len(self.vertices)
        self.backpressure = [0.0] * len(self.vertices)
        self.preview_rows = []
        self.preview_total = 0
        self.next_checkpoint = time.time() + 2.0
        self.next_row_id = 1000

    def running(self):
        return self.state in ("RUNNING", "RESTARTING", "CREATED")

    def tick(self):
        t = time.time()
        dt = max(0.0, t - self.last_tick)
        self.last_tick = t
        if not self.running():
            self.rates_in = [0.0] * len(self.vertices)
            self.rates_out = [0.0] * len(self.vertices)
            self.backpressure = [0.0] * len(self.vertices)
            self._savepoints(t)
            return
        wobble = 1.0 + 0.15 * math.sin(t / 4.0) + random.uniform(-0.05, 0.05)
        flow = self.rate * wobble
        for i, (_, _, _, factor) in enumerate(self.vertices):
            # Vertices come in topological order: their inputs' rates are known.
            inputs = [s for s, t, _ in self.edges if t == i]
            rin = sum(self.rates_out[s] for s in inputs)
            rout = flow * factor if not inputs else rin * factor
            # As the daemon counts fused chains: a source's records in are what it
            # emits, a sink's records out what it received.
            if not inputs:
                rin = rout
            if not any(s == i for s, _, _ in self.edges):
                rout = rin
            self.rates_in[i] = rin
            self.rates_out[i] = rout
            self.records_in[i] += rin * dt
            self.records_out[i] += rout * dt
            base = 0.6 if i == 0 and len(self.vertices) == 5 else 0.1
            sink = not any(s == i for s, _, _ in self.edges)
            self.backpressure[i] = 0.0 if sink else max(0.0, min(1.0, base + 0.1 * math.sin(t / 3.0 + i) + random.uniform(-0.05, 0.05)))
        new_rows = int(self.rates_in[-1] * dt)
        self.preview_total += new_rows
        for _ in range(min(new_rows, 100)):
            self.preview_rows.append(self._row(t))
        del self.preview_rows[:-1000]
        if self.checkpointing and t >= self.next_checkpoint:
            self.next_checkpoint = t + 3.0
            n = len(self.checkpoints) + 1
            ok = n % 7 != 0
            self.checkpoints.append({
                "id": n, "status": "COMPLETED" if ok else "FAILED",
                "end_to_end_duration": random.randint(8, 60),
                "state_size": 4096 * random.randint(5, 40),
                "external_path": "%s/jobs/%s/checkpoints/chk-%d" % (STATE_DIR, self.id, n) if ok else None,
                "latest_ack_timestamp": now_ms(),
            })
        self._savepoints(t)

    def _row(self, t):
        self.next_row_id += 1
        if self.name == "nexmark":
            return [str(self.next_row_id % 50 + 1000), str(int(900 + 300 * math.sin(t / 5.0) + random.randint(0, 80))),
                    "channel-%d" % random.randint(1, 9), str(random.randint(1, 40))]
        price = int(500 + 400 * math.sin(t / 6.0) + random.randint(0, 150))
        return [str(1000 + self.next_row_id % 97), str(1000 + random.randint(0, 40)), str(price),
                random.choice(["Google", "Apple", "Facebook", "channel-%d" % random.randint(1, 9999), '<b>"x"</b> & co']),
                "2015-07-15 00:00:%06.3f" % (t % 60)]

    def _savepoints(self, t):
        for rid, sp in self.savepoints.items():
            if sp["status"] == "IN_PROGRESS" and t >= sp["done_at"]:
                if self.state not in ("RUNNING", "FINISHED") and not sp["stop"]:
                    sp["status"] = "FAILED"
                    continue
                sp["status"] = "COMPLETED"
                if sp["stop"]:
                    self.state = "FINISHED"
                    self.end = now_ms()

    def columns(self):
        if self.name == "nexmark":
            return ["auction", "price", "channel", "bids"]
        return ["auction", "bidder", "price", "channel", "date_time"]

    def duration(self):
        return (self.end or now_ms()) - self.start

    def summary(self):
        return {"id": self.id, "name": self.name, "state": self.state, "start-time": self.start,
                "end-time": self.end, "duration": self.duration()}

    def detail(self):
        d = self.summary()
        d.update({
            "job": self.job, "args": self.args, "parallelism": self.parallelism,
            "restarts": self.restarts, "failure": self.failure,
            "vertices": [
                {"id": i, "name": name, "operators": ops, "parallelism": par,
                 "metrics": {"read-records": int(self.records_in[i]), "write-records": int(self.records_out[i]),
                             "records-in-per-second": round(self.rates_in[i], 1),
                             "records-out-per-second": round(self.rates_out[i], 1),
                             "backpressure-ratio": round(self.backpressure[i], 3)}}
                for i, (name, ops, par, _) in enumerate(self.vertices)
            ],
            "plan": {"edges": [{"source": s, "target": t, "ship_strategy": k} for s, t, k in self.edges]},
            "latency-us": None,
            "preview": self.preview,
        })
        if self.latency and self.running():
            t = time.time()
            p50 = 100 + 30 * math.sin(t / 5.0) + random.uniform(0, 10)
            d["latency-us"] = {"p50": round(p50, 1), "p99": round(p50 * 8 + random.uniform(0, 80), 1),
                               "p999": round(p50 * 20 + random.uniform(0, 400), 1),
                               "max": round(p50 * 40 + random.uniform(0, 900), 1)}
        return d

    def checkpoint_stats(self):
        done = [c for c in self.checkpoints if c["status"] == "COMPLETED"]
        failed = [c for c in self.checkpoints if c["status"] == "FAILED"]
        latest = {"completed": done[-1] if done else None,
                  "restored": {"id": self.restored} if self.restored else None}
        return {"counts": {"completed": len(done), "failed": len(failed),
                           "restored": 1 if self.restored else 0, "total": len(self.checkpoints)},
                "latest": latest, "history": list(reversed(self.checkpoints[-50:]))}

    def trigger_savepoint(self, target, stop):
        if self.state != "RUNNING":
            raise ApiError(409, "job '%s' is not running (%s)" % (self.id, self.state))
        if target is not None:
            if not isinstance(target, str) or target.startswith("/") or ".." in target.split("/") or not target:
                raise ApiError(400, "target-directory must be a folder name inside the state folder's savepoints/")
        self.sp_count += 1
        rid = "%032x" % random.getrandbits(128)
        name = target or "%s-%d" % (self.id, self.sp_count)
        self.savepoints[rid] = {"status": "IN_PROGRESS", "location": "%s/savepoints/%s" % (STATE_DIR, name),
                                "done_at": time.time() + 1.5, "stop": stop}
        return rid


JOBS = []  # newest first


def find(job_id):
    for j in JOBS:
        if j.id == job_id:
            return j
    raise ApiError(404, "unknown job '%s'" % job_id)


def seed():
    failed = Job("wordcount", ["--input", "/data/missing.txt", "--output", "/tmp/out/"], state="FAILED", age_s=3600)
    failed.end = failed.start + 1200
    failed.restarts = 3
    failed.failure = "task 'file source -> split (1/2)' failed: No such file or directory (os error 2): /data/missing.txt"
    for k in range(4):
        failed.exceptions.append({"exception": failed.failure + ("" if k == 3 else " (attempt %d)" % (k + 1)),
                                  "timestamp": failed.start + 300 * (k + 1)})
    done = Job("wordcount", ["--input", "/data/words.txt", "--output", "/tmp/wc/", "--checkpointing", "exactly-once"],
               state="FINISHED", age_s=1800)
    done.end = done.start + 42000
    done.checkpoints = [{"id": n, "status": "COMPLETED", "end_to_end_duration": 12 + n, "state_size": 8192 * n,
                         "external_path": "%s/jobs/%s/checkpoints/chk-%d" % (STATE_DIR, done.id, n),
                         "latest_ack_timestamp": done.start + 3000 * n} for n in range(1, 8)]
    nex = Job("nexmark", ["run", "--query", "q5", "--events", "100000000", "--rate", "50000", "--checkpointing",
                          "exactly-once"], age_s=95)
    nex.restarts = 1
    nex.exceptions = [{"exception": "task 'window aggregate (10 s tumbling) (2/2)' failed: injected failure for testing",
                       "timestamp": nex.start + 20000}]
    copy = Job("copy", ["--source", "nexmark://?events=100000000&rate=20000", "--sink", "print:?format=csv",
                        "--checkpointing", "exactly-once"], age_s=12)
    JOBS.extend([copy, nex, done, failed])
    return JOBS


def metrics_text():
    out = []
    states = {}
    for j in JOBS:
        states[j.state] = states.get(j.state, 0) + 1
    for s, n in sorted(states.items()):
        out.append('eddy_jobs{state="%s"} %d' % (s, n))
    for j in JOBS:
        lab = 'job_id="%s",job_name="%s"' % (j.id, j.name)
        out.append("eddy_job_uptime_seconds{%s} %.1f" % (lab, j.duration() / 1000))
        out.append("eddy_job_restarts_total{%s} %d" % (lab, j.restarts))
    return "\n".join(out) + "\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "eddy-mock/0.1"
    protocol_version = "HTTP/1.1"
    auth_token = None

    def log_message(self, fmt, *args):
        if os.environ.get("MOCK_LOG"):
            sys.stderr.write("mock: " + fmt % args + "\n")

    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) if ctype == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send(status, {"errors": [message], "message": message})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 64 * 1024:
            raise ApiError(413, "request body over 64 KiB")
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "malformed JSON: %s" % e)

    def handle_any(self, method):
        url = urlparse(self.path)
        path = url.path
        try:
            if method in ("POST", "PATCH", "DELETE") and self.auth_token is not None:
                if self.headers.get("Authorization") != "Bearer " + self.auth_token:
                    # Drain the body so the connection stays usable.
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    raise ApiError(401, "missing or wrong bearer token")
            with LOCK:
                for j in JOBS:
                    j.tick()
                self.route(method, path, parse_qs(url.query))
        except ApiError as e:
            self.error(e.status, e.message)

    def route(self, method, path, query):
        if path in ASSETS and method == "GET":
            name, ctype = ASSETS[path]
            try:
                with open(os.path.join(UI_DIR, name), "rb") as f:
                    return self.send(200, f.read(), ctype)
            except OSError:
                raise ApiError(404, "asset %s missing" % name)
        if path == "/healthz":
            return self.send(200, "ok", "text/plain")
        if path == "/readyz":
            return self.send(200, "ready", "text/plain")
        if path == "/metrics":
            return self.send(200, metrics_text(), "text/plain; version=0.0.4")
        if path == "/overview":
            self.only(method, "GET")
            count = lambda s: sum(1 for j in JOBS if j.state == s)
            return self.send(200, {"jobs-running": count("RUNNING"), "jobs-finished": count("FINISHED"),
                                   "jobs-cancelled": count("CANCELED"), "jobs-failed": count("FAILED"),
                                   "eddy-version": "0.1.0-mock", "cores": 2, "role": "leader", "started": STARTED})
        if path == "/jobs":
            if method == "GET":
                return self.send(200, {"jobs": [j.summary() for j in JOBS]})
            self.only(method, "POST")
            b = self.body()
            if not isinstance(b, dict) or not isinstance(b.get("job"), str):
                raise ApiError(400, "the body must be a JSON object with \"job\" and \"args\"")
            args = b.get("args") or []
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ApiError(400, "\"args\" must be a list of strings")
            if b["job"] not in BUILT_IN:
                raise ApiError(400, "unknown job '%s' (built-in jobs: copy, nexmark, wordcount)" % b["job"])
            if any(a.startswith("--bogus") for a in args):
                raise ApiError(400, "error: unexpected argument '%s' found" % next(a for a in args if a.startswith("--bogus")))
            j = Job(b["job"], args)
            if b.get("from_savepoint"):
                j.restored = 3
            JOBS.insert(0, j)
            return self.send(202, {"id": j.id})
        m = re.fullmatch(r"/jobs/([^/]+)(/.*)?", path)
        if not m:
            raise ApiError(404, "no such path: %s" % path)
        job, rest = find(m.group(1)), m.group(2) or ""
        if rest == "":
            if method == "GET":
                return self.send(200, job.detail())
            self.only(method, "PATCH", "DELETE")
            if job.running():
                job.state = "CANCELED"
                job.end = now_ms()
            return self.send(202, {})
        if rest == "/checkpoints":
            self.only(method, "GET")
            return self.send(200, job.checkpoint_stats())
        if rest == "/exceptions":
            self.only(method, "GET")
            last = job.exceptions[-1] if job.exceptions else None
            return self.send(200, {"root-exception": last["exception"] if last else None,
                                   "timestamp": last["timestamp"] if last else None,
                                   "all-exceptions": list(reversed(job.exceptions)), "restarts": job.restarts})
        if rest in ("/savepoints", "/stop"):
            self.only(method, "POST")
            b = self.body() or {}
            if not isinstance(b, dict):
                raise ApiError(400, "the body must be a JSON object")
            rid = job.trigger_savepoint(b.get("target-directory"), stop=rest == "/stop")
            return self.send(202, {"request-id": rid})
        m2 = re.fullmatch(r"/savepoints/([^/]+)", rest)
        if m2:
            self.only(method, "GET")
            sp = job.savepoints.get(m2.group(1))
            if sp is None:
                raise ApiError(404, "unknown request id '%s'" % m2.group(1))
            if sp["status"] == "IN_PROGRESS":
                return self.send(200, {"status": {"id": "IN_PROGRESS"}})
            if sp["status"] == "FAILED":
                return self.send(200, {"status": {"id": "COMPLETED"},
                                       "operation": {"failure-cause": {"message": "the job ended before the savepoint completed"}}})
            return self.send(200, {"status": {"id": "COMPLETED"}, "operation": {"location": sp["location"]}})
        if rest == "/preview":
            self.only(method, "GET")
            if not job.preview:
                raise ApiError(404, "job '%s' has no result preview (no print: sink)" % job.id)
            try:
                n = int(query.get("rows", ["100"])[0])
            except ValueError:
                raise ApiError(400, "rows must be a number")
            n = max(0, min(n, 1000))
            return self.send(200, {"columns": job.columns(), "rows": job.preview_rows[-n:] if n else [],
                                   "total": job.preview_total})
        raise ApiError(404, "no such path: %s" % path)

    def only(self, method, *allowed):
        if method not in allowed:
            raise ApiError(405, "method %s not allowed here" % method)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("serve", nargs="?", help="ignored: lets the mock stand in for `eddy serve`")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http", default=None, help="HOST:PORT, as `eddy serve --http` (overrides --host/--port)")
    p.add_argument("--state-dir", default=None, help="only shapes the paths it reports")
    p.add_argument("--auth-token", default=None)
    p.add_argument("--no-seed", action="store_true", help="start with no jobs")
    a = p.parse_args()
    if a.http:
        a.host, _, port = a.http.rpartition(":")
        a.port = int(port)
    if a.state_dir:
        global STATE_DIR
        STATE_DIR = os.path.abspath(a.state_dir)
    Handler.auth_token = a.auth_token
    if not a.no_seed:
        for j in seed():
            print("job %s %s" % (j.id, j.name))
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print("listening on http://%s:%d" % (a.host, srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
