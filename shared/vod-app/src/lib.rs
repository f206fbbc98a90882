//! Entry points shared by the Lambda functions and the local function host: configuration, the management API
//! router, the packager's HTTP adapter, key delivery, the ingest handler and log setup. Functions' `main.rs` only wire these to the Lambda runtime.
pub mod api;
pub mod config;
pub mod ingest;
pub mod keys;
pub mod stream;
pub mod sweeper;

/// The composition root's configuration, event publishers and telemetry, as the handlers' crate re-exports them.
pub use vod_runtime::{events, telemetry};

pub use config::{AppConfig, AppContext, ConfigError};
