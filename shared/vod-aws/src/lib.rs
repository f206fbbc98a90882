//! AWS implementations of the domain's ports: `DynamoAssetStore`, `DynamoJobStore` and
//! `DynamoDeliveryStore` (one DynamoDB table),
//! `DynamoKeyStore`, `DynamoSearchStore`, `S3BlobStore`, `SqsTaskQueue`, `EventBridgePublisher`, `KmsKeyService`.
//! The SDK finds its endpoint the usual way (`AWS_ENDPOINT_URL` points it at the local emulator).
pub mod cloudfront;
pub mod dynamo;
pub mod dynamo_delivery;
pub mod dynamo_jobs;
pub mod dynamo_keys;
pub mod dynamo_search;
pub mod events;
pub mod kms;
pub mod s3;
pub mod sqs;
mod table;

pub use cloudfront::CloudFrontCdn;
pub use dynamo::DynamoAssetStore;
pub use dynamo_delivery::DynamoDeliveryStore;
pub use dynamo_jobs::DynamoJobStore;
pub use dynamo_keys::DynamoKeyStore;
pub use dynamo_search::DynamoSearchStore;
pub use events::EventBridgePublisher;
pub use kms::KmsKeyService;
pub use s3::S3BlobStore;
pub use sqs::SqsTaskQueue;

/// Loads the shared SDK configuration from the environment (region, credentials, endpoint override).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Formats any SDK error with its full source chain (the top-level `Display` says only "service error").
pub(crate) fn sdk_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}
