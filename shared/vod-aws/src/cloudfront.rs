//! The CDN cache port on CloudFront: cached paths are dropped with an invalidation of the stack's distribution;
//! a deferred invalidation waits on an SQS queue (message delay) until it comes due.
use async_trait::async_trait;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;
use tracing::info;
use vod_domain::{CdnCache, DeferredInvalidation, StoreError};

use crate::sdk_error;

pub struct CloudFrontCdn {
    client: Client,
    distribution_id: String,
    /// Where deferred invalidations wait (SQS client and queue URL).
    deferred: Option<(aws_sdk_sqs::Client, String)>,
}

impl CloudFrontCdn {
    /// The CDN of `distribution_id`, with a client from the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, distribution_id: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), distribution_id)
    }

    pub fn new(client: Client, distribution_id: impl Into<String>) -> Self {
        CloudFrontCdn {
            client,
            distribution_id: distribution_id.into(),
            deferred: None,
        }
    }

    /// Deferred invalidations wait on the queue at `url` (SQS delays a message up to 15 minutes).
    pub fn with_deferral(mut self, sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        self.deferred = Some((sqs, url.into()));
        self
    }
}

#[async_trait]
impl CdnCache for CloudFrontCdn {
    async fn invalidate(&self, paths: &[String]) -> Result<(), StoreError> {
        if paths.is_empty() {
            return Ok(());
        }
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(paths.len() as i32)
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            )
            .caller_reference(uuid::Uuid::new_v4().to_string())
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| StoreError::Backend(sdk_error(&e)))?;
        info!(
            distribution = %self.distribution_id,
            invalidation = out.invalidation().map(|i| i.id()).unwrap_or_default(),
            paths = paths.len(),
            "CDN invalidation created"
        );
        Ok(())
    }

    async fn invalidate_later(&self, paths: &[String], delay: std::time::Duration) -> Result<(), StoreError> {
        let Some((sqs, url)) = &self.deferred else {
            return Ok(());
        };
        if paths.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&DeferredInvalidation { paths: paths.to_vec() })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        sqs.send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay.as_secs().clamp(1, 900) as i32)
            .send()
            .await
            .map_err(|e| StoreError::Backend(sdk_error(&e)))?;
        info!(
            paths = paths.len(),
            delay_secs = delay.as_secs(),
            "CDN invalidation deferred"
        );
        Ok(())
    }
}
