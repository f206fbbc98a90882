//! The API and ingest functions' context, built once per cold start from the configuration and the adapters of
//! the composition root (`vod_runtime`).
use vod_domain::delivery::DeliveryService;
use vod_domain::jobs::JobService;
use vod_domain::protection::ProtectionService;
use vod_domain::AssetService;
pub use vod_runtime::{Adapters, AppConfig, ConfigError};

/// Everything a handler needs, built once per cold start and shared by all invocations.
#[derive(Clone)]
pub struct AppContext {
    pub config: AppConfig,
    pub assets: AssetService,
    pub jobs: JobService,
    pub delivery: DeliveryService,
    pub protection: ProtectionService,
    pub search: vod_domain::search::SearchService,
    pub captions: vod_domain::sidecar::CaptionService,
}

impl AppContext {
    /// Wires the AWS adapters behind the domain's ports.
    pub fn new(sdk: &aws_config::SdkConfig, config: AppConfig) -> Self {
        let a = Adapters::new(sdk, &config.table_name, &config.kms_key_id);
        let assets = AssetService::new(a.assets.clone(), a.blobs.clone(), config.service_config())
            .with_key_service(a.kms.clone());
        let search = vod_domain::search::SearchService::new(a.assets.clone(), a.blobs.clone(), a.search.clone());
        let captions = vod_domain::sidecar::CaptionService::new(
            a.assets.clone(),
            a.blobs.clone(),
            a.search.clone(),
            config.media_bucket.clone(),
        );
        // The CDN path of the packager's routes: the path of STREAM_BASE_URL (`https://cdn/stream` → `/stream`).
        let stream_path = config
            .stream_base_url
            .as_deref()
            .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/stream")
            .to_string();
        let recheck = config.cdn_recheck.as_ref();
        let mut delivery = DeliveryService::new(a.assets.clone(), a.delivery.clone()).with_cdn(
            Adapters::cdn(
                sdk,
                config.distribution_id.as_deref(),
                recheck.map(|(url, _)| url.as_str()),
            ),
            &stream_path,
        );
        if let Some((_, after)) = recheck {
            delivery = delivery.with_cdn_recheck(*after);
        }
        let protection = ProtectionService::new(a.assets.clone(), a.keys.clone(), a.kms.clone());
        let jobs = JobService::new(
            a.assets.clone(),
            a.jobs.clone(),
            a.queue(&config.encode_queue_url),
            config.event_publisher(sdk),
        )
        .with_limits(config.job_limits);
        AppContext {
            config,
            assets,
            jobs,
            delivery,
            protection,
            search,
            captions,
        }
    }

    /// Builds the context from the process environment (what a Lambda function does at cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = AppConfig::from_env()?;
        let sdk = vod_aws::load_sdk_config().await;
        Ok(Self::new(&sdk, config))
    }
}
