//! Job events on an EventBridge bus (source `vod.jobs`, detail type `Job State Change`), best effort.
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use tracing::warn;
use vod_domain::{EventPublisher, JobEvent};

use crate::sdk_error;

pub const EVENT_SOURCE: &str = "vod.jobs";
pub const DETAIL_TYPE: &str = "Job State Change";

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &JobEvent) {
        let Ok(detail) = serde_json::to_string(event) else {
            return;
        };
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(DETAIL_TYPE)
            .resources(format!("job/{}", event.job_id))
            .detail(detail)
            .build();
        match self.client.put_events().entries(entry).send().await {
            Ok(out) if out.failed_entry_count > 0 => warn!(job_id = %event.job_id, "the event bus refused a job event"),
            Ok(_) => {}
            Err(e) => warn!(job_id = %event.job_id, error = %sdk_error(&e), "publishing a job event failed"),
        }
    }
}
