//! Domain of the VoD platform: assets and their files, the rules that move them between states, and the ports
//! (traits) behind which storage lives. Nothing here knows about AWS.
pub mod captions;
pub mod delivery;
pub mod error;
pub mod indexing;
pub mod ingest;
pub mod job;
pub mod jobs;
pub mod memory;
pub mod model;
pub mod ports;
pub mod protection;
pub mod search;
pub mod service;
pub mod sidecar;
pub mod storage;

pub use error::{DomainError, StoreError};
pub use model::*;
pub use ports::*;
pub use service::{AssetService, ServiceConfig};
