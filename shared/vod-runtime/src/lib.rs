//! The composition root of every function (and of the local stack): configuration from one typed source (the
//! environment template.yaml sets), telemetry, job event publishers, and the adapters behind the domain's ports,
//! each made once ([`Adapters`]). The API, ingest, packager, key and encoder functions build their contexts from
//! here; none of them depends on another's handlers.
pub mod adapters;
pub mod config;
pub mod events;
pub mod telemetry;

pub use adapters::Adapters;
pub use config::{AppConfig, ConfigError};
