//! Job event delivery: the EventBridge bus and, if configured, a webhook whose requests carry an HMAC-SHA256
//! signature of the body (`X-Vod-Signature: sha256=<hex>`) made with a secret from configuration.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::warn;
use vod_domain::{EventPublisher, JobEvent};

/// Header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "x-vod-signature";

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs each event as JSON to a URL, signed.
pub struct WebhookPublisher {
    url: String,
    secret: Vec<u8>,
    http: reqwest::Client,
}

impl WebhookPublisher {
    pub fn new(url: String, secret: Vec<u8>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        WebhookPublisher { url, secret, http }
    }
}

#[async_trait]
impl EventPublisher for WebhookPublisher {
    async fn publish(&self, event: &JobEvent) {
        let Ok(body) = serde_json::to_vec(event) else { return };
        let res = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, &body))
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => warn!(job_id = %event.job_id, status = %r.status(), "webhook refused a job event"),
            Err(e) => warn!(job_id = %event.job_id, error = %e, "webhook delivery failed"),
        }
    }
}

/// Sends every event to each publisher.
pub struct Fanout(pub Vec<Arc<dyn EventPublisher>>);

#[async_trait]
impl EventPublisher for Fanout {
    async fn publish(&self, event: &JobEvent) {
        for p in &self.0 {
            p.publish(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
