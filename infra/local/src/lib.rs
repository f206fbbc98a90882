//! The local stack: reads `template.yaml` (the one source of truth), creates its buckets, notifications, queues and
//! tables on the AWS emulator, and hosts its functions — SQS pollers that behave like Lambda's event source and an
//! HTTP gateway that turns requests into API Gateway events — on the very handlers the Lambdas run.
pub mod gateway;
pub mod host;
pub mod iam;
pub mod provision;
pub mod stack;
pub mod template;

pub use host::{FunctionHost, HostOptions};
pub use stack::{LocalStack, LocalStackOptions};
pub use template::{StackSpec, Template};
