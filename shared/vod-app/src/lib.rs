//! Entry points shared by the Lambda functions and the local function host: configuration, the management API
//! router, the packager's HTTP adapter, key delivery, the ingest handler and log setup. Functions' `main.rs` only wire these to the Lambda runtime.
pub mod api;
pub mod config;
pub mod events;
pub mod ingest;
pub mod keys;
pub mod stream;
pub mod sweeper;
pub mod telemetry;

pub use config::{AppConfig, AppContext, ConfigError};
