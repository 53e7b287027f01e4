//! An application that embeds eddy and runs the daemon with a job of its own, like
//! Flink's application mode: `cargo run --example embedded_daemon -- --state-dir /tmp/s`
//! then `eddy submit --server http://127.0.0.1:8081 squares --up-to 1000000`.

use std::process::ExitCode;

use eddy::cli::{Failure, Prepared};
use eddy::daemon::{JobContext, Registry};
use eddy::prelude::*;

/// `squares --up-to N`: sums the squares of 1..=N, in parallel, and logs the sum.
fn squares(args: &[String], context: &JobContext) -> Result<Prepared, Failure> {
    let up_to: u64 = match args {
        [flag, value] if flag == "--up-to" => value
            .parse()
            .map_err(|_| Failure::usage(format!("--up-to: '{value}' is not a number")))?,
        _ => return Err(Failure::usage("expected --up-to N")),
    };
    let mut config = JobConfig {
        name: "squares".into(),
        ..JobConfig::default()
    };
    context.configure(&mut config);
    let env = Env::new(config);
    env.from_iter(1..=up_to)
        .map(|x| x * x)
        .key_by(|_| 0u8)
        .reduce(|a, b| a + b)
        .sink_fn(|sum| tracing::info!(sum, "squares"));
    Ok(Prepared::new(env, "squares"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let mut jobs = Registry::builtin();
    jobs.register("squares", squares);
    match eddy::daemon::serve(jobs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}
