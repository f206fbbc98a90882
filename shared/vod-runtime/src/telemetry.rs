//! Log setup: JSON lines in Lambda (CloudWatch), with every enclosing span on each line — the runtime's
//! `Lambda runtime invoke` span carries the request id.
use tracing_subscriber::EnvFilter;

/// Initialises JSON logging once; `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` picks the level (default info).
pub fn init_json() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_lowercase()))
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(filter))
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Human-readable logs for the local stack and the CLI.
pub fn init_pretty(default_level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default_level.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
