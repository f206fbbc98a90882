//! Configuration of the functions, read from their environment (set by template.yaml).
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use vod_domain::ServiceConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("missing configuration variable {0}")]
    Missing(&'static str),
    #[error("configuration variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Settings of the functions, read from their environment.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub table_name: String,
    pub upload_bucket: String,
    pub media_bucket: String,
    /// Bearer token required by the management API when set (local stack). In AWS the HTTP API checks IAM
    /// signatures instead and this stays unset.
    pub admin_token: Option<String>,
    /// `API_AUTH=iam`: API Gateway's IAM authorizer admits requests (the function checks that an IAM caller is in
    /// the request context). With neither this nor `admin_token` the API refuses every request (fails closed).
    pub api_auth_iam: bool,
    /// The CloudFront distribution in front of the packager (`DISTRIBUTION_ID`): unpublishing, deleting and
    /// protection changes invalidate the locators' paths there. None: no CDN to tell.
    pub distribution_id: Option<String>,
    /// Deferred invalidations (`CDN_RECHECK_QUEUE_URL`, `CDN_RECHECK_SECONDS`): every invalidation is made again
    /// after this long, from this queue, once the packager's instances no longer trust what they cached.
    pub cdn_recheck: Option<(String, Duration)>,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub url_ttl: Duration,
    /// Queue of encoding tasks.
    pub encode_queue_url: String,
    /// Preset of the job that ingest starts after a successful probe (none: jobs start through the API only).
    pub auto_encode_preset: Option<String>,
    /// EventBridge bus for job events.
    pub event_bus: Option<String>,
    /// Webhook for job events and the secret that signs them.
    pub webhook: Option<(String, String)>,
    /// Public base of streaming URLs (the CDN in front of the packager, ending in `/stream`).
    pub stream_base_url: Option<String>,
    /// A page that plays a stream given `?src=` (the player page); optional.
    pub player_url: Option<String>,
    /// The KMS key (id, ARN or alias) that wraps content keys and verification secrets.
    pub kms_key_id: String,
    /// How long after its upload an asset may wait for its probe before it is in Error.
    pub probe_deadline: Duration,
    /// How long a job may go without progress before the sweeper puts it in Error.
    pub job_stall: Duration,
    /// Limits of a job's plan (tasks, source duration).
    pub job_limits: vod_domain::jobs::JobLimits,
}

impl AppConfig {
    /// Reads the configuration through `get` (the process environment in Lambda, the template locally).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(k));
        let num = |k: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(k).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid(k, v)),
            }
        };
        let d = ServiceConfig::default();
        Ok(AppConfig {
            table_name: req("TABLE_NAME")?,
            upload_bucket: req("UPLOAD_BUCKET")?,
            media_bucket: req("MEDIA_BUCKET")?,
            admin_token: get("ADMIN_TOKEN").filter(|t| !t.is_empty()),
            api_auth_iam: get("API_AUTH").is_some_and(|a| a.eq_ignore_ascii_case("iam")),
            distribution_id: get("DISTRIBUTION_ID").filter(|d| !d.is_empty()),
            cdn_recheck: match get("CDN_RECHECK_QUEUE_URL").filter(|u| !u.is_empty()) {
                None => None,
                Some(url) => Some((url, Duration::from_secs(num("CDN_RECHECK_SECONDS", 60)?.clamp(1, 900)))),
            },
            multipart_threshold: num("MULTIPART_THRESHOLD_BYTES", d.multipart_threshold)?,
            part_size: num("MULTIPART_PART_SIZE_BYTES", d.part_size)?,
            url_ttl: Duration::from_secs(num("UPLOAD_URL_TTL_SECONDS", d.url_ttl.as_secs())?),
            encode_queue_url: req("ENCODE_QUEUE_URL")?,
            auto_encode_preset: get("AUTO_ENCODE_PRESET").filter(|p| !p.is_empty()),
            event_bus: get("EVENT_BUS_NAME").filter(|b| !b.is_empty()),
            stream_base_url: get("STREAM_BASE_URL")
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_string()),
            player_url: get("PLAYER_URL").filter(|u| !u.is_empty()),
            kms_key_id: req("KMS_KEY_ID")?,
            probe_deadline: Duration::from_secs(num("PROBE_DEADLINE_SECONDS", d.probe_deadline.as_secs())?),
            job_stall: Duration::from_secs(num("JOB_STALL_SECONDS", 3600)?),
            job_limits: {
                let l = vod_domain::jobs::JobLimits::default();
                vod_domain::jobs::JobLimits {
                    max_tasks: u32::try_from(num("MAX_JOB_TASKS", u64::from(l.max_tasks))?)
                        .map_err(|_| ConfigError::Invalid("MAX_JOB_TASKS", "too large".into()))?,
                    max_source_secs: num("MAX_SOURCE_SECONDS", l.max_source_secs as u64)? as f64,
                    encode_timeout_secs: num("ENCODE_TIMEOUT_SECONDS", l.encode_timeout_secs as u64)? as f64,
                    encode_vcpus: match get("ENCODE_MEMORY_MB").filter(|v| !v.is_empty()) {
                        None => l.encode_vcpus,
                        Some(_) => vod_domain::jobs::JobLimits::vcpus_for_memory(num("ENCODE_MEMORY_MB", 3008)? as f64),
                    },
                }
            },
            webhook: match get("WEBHOOK_URL").filter(|u| !u.is_empty()) {
                None => None,
                Some(url) => Some((url, req("WEBHOOK_SECRET")?)),
            },
        })
    }

    /// The job event publishers this configuration asks for.
    pub fn event_publisher(&self, sdk: &aws_config::SdkConfig) -> Arc<dyn vod_domain::EventPublisher> {
        let mut sinks: Vec<Arc<dyn vod_domain::EventPublisher>> = Vec::new();
        if let Some(bus) = &self.event_bus {
            sinks.push(Arc::new(vod_aws::EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(sdk),
                bus.clone(),
            )));
        }
        if let Some((url, secret)) = &self.webhook {
            sinks.push(Arc::new(crate::events::WebhookPublisher::new(
                url.clone(),
                secret.as_bytes().to_vec(),
            )));
        }
        Arc::new(crate::events::Fanout(sinks))
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            upload_bucket: self.upload_bucket.clone(),
            media_bucket: self.media_bucket.clone(),
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            url_ttl: self.url_ttl,
            probe_deadline: self.probe_deadline,
            ..ServiceConfig::default()
        }
    }
}
