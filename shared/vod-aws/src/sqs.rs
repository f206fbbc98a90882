//! The task queue on SQS: one JSON message per task, sent in batches of ten.
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use vod_domain::{StoreError, TaskMessage, TaskQueue};

use crate::sdk_error;

pub struct SqsTaskQueue {
    client: Client,
    url: String,
}

impl SqsTaskQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsTaskQueue {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl TaskQueue for SqsTaskQueue {
    async fn send(&self, messages: &[TaskMessage]) -> Result<(), StoreError> {
        for batch in messages.chunks(10) {
            let mut entries = Vec::with_capacity(batch.len());
            for (i, m) in batch.iter().enumerate() {
                let body = serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Backend(e.to_string()))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| StoreError::Backend(sdk_error(&e)))?;
            if !out.failed.is_empty() {
                return Err(StoreError::Backend(format!(
                    "{} task messages were not accepted",
                    out.failed.len()
                )));
            }
        }
        Ok(())
    }
}
