//! The packager's HTTP adapter (lambda_http, behind API Gateway and CloudFront): checks every request against its
//! Locator (exists, within its time window, of the right kind) and the asset's filters, then answers with an HLS
//! or DASH manifest built by `vod_package`, an init segment, a media segment (one S3 GET, or none when the segment
//! index, cached per warm instance, answers a conditional or HEAD request), a progressive MP4 with Range, or the
//! asset's captions (HLS subtitles playlist, segmented WebVTT, one WebVTT file for DASH).
//! Errors are JSON `{"error":{"code","message"}}`; nothing outside the locator's asset can be named.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use vod_domain::delivery::{
    select, ContentVersion, DeliveryService, Filter, Locator, LocatorId, LocatorKind, LocatorWindow,
};
use vod_domain::indexing::{webvtt, webvtt_segment, Cue};
use vod_domain::protection::{
    delivery_for, ContentKey, Delivery, DeliveryPolicy, KeyId, Protection, ProtectionService, Protocol,
};
use vod_domain::{
    Asset, AssetId, AssetOutput, AssetState, AssetStore, BlobRef, BlobStore, DomainError, ProgressiveFile,
    ProgressiveRun, SegmentIndex,
};
use vod_package::dash::DashProtection;
use vod_package::drm::{self, DrmId, Signal};
use vod_package::encrypt::{aes128_cbc_owned, protect_init, Protector, Scheme};
use vod_package::progressive::ProgressiveMap;
use vod_package::range::{parse_range, RangeOutcome};
use vod_package::timeline::{overlapping, TextTrack, TrackKind};
use vod_package::url::Enc;
use vod_package::{dash, hls, Format, Presentation, Resource, StreamRequest, TrackTimeline, UrlError};
use zeroize::Zeroizing;

use crate::api::{error_response, ApiError};
use crate::config::ConfigError;

/// Largest body one response carries: Lambda's 6 MB response limit after base64 (binary bodies through API
/// Gateway). Larger segments are redirected to a presigned S3 URL; a larger range of a progressive file is shortened
/// (the client asks for the rest).
pub const MAX_BODY: u64 = 4 * 1024 * 1024;
/// Ranged reads of segments in flight for one progressive-download response.
const PROGRESSIVE_READS: usize = 8;

/// Default `SEGMENT_MAX_AGE_SECONDS`: one hour.
pub const DEFAULT_SEGMENT_MAX_AGE: u64 = 3600;

#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub table_name: String,
    pub media_bucket: String,
    /// How long manifests may be cached, and how long a warm instance trusts a looked-up locator, asset or filter:
    /// a deleted locator stops working within this time.
    pub manifest_ttl: Duration,
    /// The path prefix of the packager's routes (`/stream`).
    pub base_path: String,
    /// The KMS key that wraps content keys.
    pub kms_key_id: String,
    /// The task queue, where the packager asks for a progressive file to be stored whole (one-request downloads).
    pub encode_queue_url: Option<String>,
    /// How long segments, init segments and files may be cached (never longer than the locator has left): what a
    /// CDN may keep serving after an unpublish, a delete or a key change.
    pub segment_max_age: Duration,
}

impl StreamConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(k));
        let ttl = match get("MANIFEST_TTL_SECONDS").filter(|v| !v.is_empty()) {
            None => 10,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=3600).contains(n))
                .ok_or(ConfigError::Invalid("MANIFEST_TTL_SECONDS", v))?,
        };
        let segment_max_age = match get("SEGMENT_MAX_AGE_SECONDS").filter(|v| !v.is_empty()) {
            None => DEFAULT_SEGMENT_MAX_AGE,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=31_536_000).contains(n))
                .ok_or(ConfigError::Invalid("SEGMENT_MAX_AGE_SECONDS", v))?,
        };
        Ok(StreamConfig {
            segment_max_age: Duration::from_secs(segment_max_age),
            table_name: req("TABLE_NAME")?,
            media_bucket: req("MEDIA_BUCKET")?,
            manifest_ttl: Duration::from_secs(ttl),
            base_path: get("STREAM_BASE_PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/stream".into())
                .trim_end_matches('/')
                .to_string(),
            kms_key_id: req("KMS_KEY_ID")?,
            encode_queue_url: get("ENCODE_QUEUE_URL").filter(|v| !v.is_empty()),
        })
    }
}

/// The packager's state: stores and per-instance caches.
#[derive(Clone)]
pub struct StreamContext {
    pub config: StreamConfig,
    assets: Arc<dyn AssetStore>,
    delivery: DeliveryService,
    blobs: Arc<dyn BlobStore>,
    locators: Cache<LocatorId, Option<Arc<Locator>>>,
    /// The asset of each locator this instance served (kept past the locator's TTL, to drop a deleted asset's data).
    locator_assets: Cache<LocatorId, AssetId>,
    asset_cache: Cache<AssetId, Option<Arc<Asset>>>,
    filters: Cache<(AssetId, String), Option<Arc<Filter>>>,
    /// Segment indexes and init segments never change once written (keys are per job): cached by object key.
    indexes: Cache<String, Arc<SegmentIndex>>,
    /// Caption cues of indexed assets (per job, never rewritten), parsed once.
    cues: Cache<String, Arc<Vec<Cue>>>,
    objects: Cache<String, Arc<Vec<u8>>>,
    /// Progressive files' descriptions (per job, never rewritten) and the pages of runs that ranges needed.
    progressive: Cache<String, Arc<ProgressiveMap>>,
    run_pages: Cache<(String, usize), Arc<Vec<ProgressiveRun>>>,
    protection: ProtectionService,
    /// An asset's content key record (no key material), and unwrapped keys (kept in memory only, zeroized when
    /// evicted).
    asset_keys: Cache<AssetId, Option<Arc<ContentKey>>>,
    plain_keys: Cache<KeyId, Arc<Zeroizing<[u8; 16]>>>,
    /// Where to ask for a progressive file to be stored whole, and the files already asked for (once per warm
    /// instance and 5 minutes).
    queue: Option<Arc<dyn vod_domain::TaskQueue>>,
    materializing: Cache<String, ()>,
    /// Per track (init segment), scheme and key id: the protector built once from the init segment.
    protectors: Cache<(String, Scheme, [u8; 16]), Arc<Protector>>,
}

fn err(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, code, msg)
}

fn not_found(msg: impl Into<String>) -> ApiError {
    err(StatusCode::NOT_FOUND, "not_found", msg)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    warn!(error = %e, "storage failure");
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "storage is unavailable; retry later",
    )
}

fn etag_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..12]))
}

impl StreamContext {
    pub fn with_stores(
        config: StreamConfig,
        assets: Arc<dyn AssetStore>,
        delivery: DeliveryService,
        blobs: Arc<dyn BlobStore>,
        protection: ProtectionService,
    ) -> Self {
        let ttl = config.manifest_ttl;
        StreamContext {
            protection,
            asset_keys: Cache::builder().max_capacity(1_000).time_to_live(ttl).build(),
            plain_keys: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            locators: Cache::builder().max_capacity(10_000).time_to_live(ttl).build(),
            locator_assets: Cache::builder().max_capacity(10_000).build(),
            asset_cache: Cache::builder().max_capacity(1_000).time_to_live(ttl).build(),
            filters: Cache::builder().max_capacity(1_000).time_to_live(ttl).build(),
            indexes: Cache::builder()
                .max_capacity(2_000)
                .support_invalidation_closures()
                .build(),
            cues: Cache::builder()
                .max_capacity(500)
                .support_invalidation_closures()
                .build(),
            objects: Cache::builder()
                .weigher(|_k: &String, v: &Arc<Vec<u8>>| v.len().try_into().unwrap_or(u32::MAX))
                .max_capacity(32 * 1024 * 1024)
                .support_invalidation_closures()
                .build(),
            progressive: Cache::builder()
                .max_capacity(1_000)
                .support_invalidation_closures()
                .build(),
            run_pages: Cache::builder()
                .weigher(|_k: &(String, usize), v: &Arc<Vec<ProgressiveRun>>| {
                    (v.len() * 128).try_into().unwrap_or(u32::MAX)
                })
                .max_capacity(16 * 1024 * 1024)
                .support_invalidation_closures()
                .build(),
            queue: None,
            protectors: Cache::builder()
                .max_capacity(4_000)
                .support_invalidation_closures()
                .build(),
            materializing: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            config,
            assets,
            delivery,
            blobs,
        }
    }

    /// The protector of a track (its init segment `init`) under `scheme` and key id `kid`, built once per warm
    /// instance: a segment request then only parses its own fragment and runs the cipher.
    async fn protector(
        &self,
        init: &str,
        bucket: &str,
        scheme: Scheme,
        kid: [u8; 16],
    ) -> Result<Arc<Protector>, ApiError> {
        let id = (init.to_string(), scheme, kid);
        if let Some(p) = self.protectors.get(&id) {
            return Ok(p);
        }
        let bytes = self.object(init, bucket).await?;
        let p = Arc::new(Protector::new(&bytes, scheme, &kid).map_err(|e| {
            warn!(error = %e, "init segment cannot be protected");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "package_failed",
                "cannot protect the track",
            )
        })?);
        self.protectors.insert(id, p.clone());
        Ok(p)
    }

    /// Asks for a rendition's progressive file to be stored whole (at most once per warm instance and 5 minutes).
    async fn request_materialize(&self, job_id: vod_domain::job::JobId, rendition: &str, key: &str) {
        let Some(queue) = &self.queue else { return };
        if self.materializing.contains_key(key) {
            return;
        }
        let msg = vod_domain::TaskMessage {
            job_id,
            task: 0,
            expand: false,
            materialize: Some(rendition.to_string()),
        };
        match queue.send(&[msg]).await {
            Ok(()) => {
                info!(%job_id, rendition, "asked for the progressive file to be stored whole");
                self.materializing.insert(key.to_string(), ());
            }
            Err(e) => warn!(error = %e, "could not ask for the progressive file"),
        }
    }

    pub fn new(sdk: &aws_config::SdkConfig, config: StreamConfig) -> Self {
        // Storage-encrypted assets: the packager decrypts exactly the ranges it reads.
        let a = vod_runtime::Adapters::new(sdk, &config.table_name, &config.kms_key_id);
        let delivery = DeliveryService::new(a.assets.clone(), a.delivery.clone());
        let protection = ProtectionService::new(a.assets.clone(), a.keys.clone(), a.kms.clone());
        let queue = config.encode_queue_url.as_deref().map(|url| a.queue(url));
        let mut ctx = Self::with_stores(config, a.assets, delivery, a.blobs, protection);
        ctx.queue = queue;
        ctx
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = StreamConfig::from_lookup(|k| std::env::var(k).ok())?;
        let sdk = vod_aws::load_sdk_config().await;
        Ok(Self::new(&sdk, config))
    }

    async fn locator(&self, id: LocatorId) -> Result<Arc<Locator>, ApiError> {
        let cached = match self.locators.get(&id) {
            Some(l) => l,
            None => {
                let l = self
                    .delivery
                    .store()
                    .get_locator(id)
                    .await
                    .map_err(unavailable)?
                    .map(Arc::new);
                match &l {
                    Some(l) => self.locator_assets.insert(id, l.asset_id),
                    // Gone: if its asset is gone too (a delete), what this instance cached of it goes now.
                    None => {
                        if let Some(asset) = self.locator_assets.remove(&id) {
                            self.asset_cache.invalidate(&asset);
                            let _ = self.asset(asset).await;
                        }
                    }
                }
                self.locators.insert(id, l.clone());
                l
            }
        };
        cached.ok_or_else(|| not_found(format!("locator {id} not found")))
    }

    async fn asset(&self, id: AssetId) -> Result<Arc<Asset>, ApiError> {
        let cached = match self.asset_cache.get(&id) {
            Some(a) => a,
            None => {
                let a = self.assets.get(id).await.map_err(unavailable)?.map(Arc::new);
                if a.as_ref().is_none_or(|a| a.state != AssetState::Ready) {
                    self.drop_asset_data(id);
                }
                self.asset_cache.insert(id, a.clone());
                a
            }
        };
        cached
            .filter(|a| a.state == AssetState::Ready && a.output.is_some())
            .ok_or_else(|| not_found(format!("asset {id} has no published output")))
    }

    /// Drops what this instance cached of an asset that is gone or no longer Ready: its indexes, init segments,
    /// cues, progressive maps, protectors and content key (every object key of an asset is under `assets/{id}/`).
    fn drop_asset_data(&self, id: AssetId) {
        let prefix = Arc::new(format!("assets/{id}/"));
        let p = prefix.clone();
        let _ = self
            .indexes
            .invalidate_entries_if(move |k, _| k.starts_with(p.as_str()));
        let p = prefix.clone();
        let _ = self.cues.invalidate_entries_if(move |k, _| k.starts_with(p.as_str()));
        let p = prefix.clone();
        let _ = self
            .objects
            .invalidate_entries_if(move |k, _| k.starts_with(p.as_str()));
        let p = prefix.clone();
        let _ = self
            .progressive
            .invalidate_entries_if(move |k, _| k.starts_with(p.as_str()));
        let p = prefix.clone();
        let _ = self
            .run_pages
            .invalidate_entries_if(move |k, _| k.0.starts_with(p.as_str()));
        let p = prefix;
        let _ = self
            .protectors
            .invalidate_entries_if(move |k, _| k.0.starts_with(p.as_str()));
        if let Some(Some(key)) = self.asset_keys.remove(&id) {
            self.plain_keys.invalidate(&key.kid);
        }
    }

    /// Entries cached of asset `id`'s objects (tests: what a delete leaves in a warm instance).
    pub fn cached_entries_of(&self, id: AssetId) -> usize {
        self.indexes.run_pending_tasks();
        self.objects.run_pending_tasks();
        self.protectors.run_pending_tasks();
        let prefix = format!("assets/{id}/");
        self.indexes.iter().filter(|(k, _)| k.starts_with(&prefix)).count()
            + self.objects.iter().filter(|(k, _)| k.starts_with(&prefix)).count()
            + self.protectors.iter().filter(|(k, _)| k.0.starts_with(&prefix)).count()
    }

    async fn filter(&self, asset: AssetId, name: &str) -> Result<Arc<Filter>, ApiError> {
        let key = (asset, name.to_string());
        if let Some(f) = self.filters.get(&key) {
            return f.ok_or_else(|| err(StatusCode::BAD_REQUEST, "unknown_filter", format!("no filter {name:?}")));
        }
        let found = match self.delivery.resolve_filters(asset, &[name.to_string()]).await {
            Ok(mut v) => v.pop().map(Arc::new),
            Err(DomainError::NotFound { .. }) | Err(DomainError::Invalid(_)) => None,
            Err(e) => return Err(unavailable(e)),
        };
        self.filters.insert(key, found.clone());
        found.ok_or_else(|| err(StatusCode::BAD_REQUEST, "unknown_filter", format!("no filter {name:?}")))
    }

    async fn object(&self, key: &str, bucket: &str) -> Result<Arc<Vec<u8>>, ApiError> {
        if let Some(b) = self.objects.get(key) {
            return Ok(b);
        }
        let blob = BlobRef::new(bucket, key);
        // One GET (no HEAD first).
        let bytes = Arc::new(
            self.blobs
                .get(&blob)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| not_found("object missing"))?,
        );
        self.objects.insert(key.to_string(), bytes.clone());
        Ok(bytes)
    }

    /// The content version of `asset`'s streams: its output's job, its captions' job, its sidecar caption tracks
    /// and, where a delivery policy protects it, the content key in use.
    async fn content_version(&self, asset: &Asset) -> Result<ContentVersion, ApiError> {
        let output = asset.output.as_ref().ok_or_else(|| not_found("asset has no output"))?;
        let protected = asset
            .delivery_policies
            .iter()
            .any(|p| p.protection != Protection::Clear);
        let key = match protected {
            true => Some(self.key_record(asset.id).await?.kid),
            false => None,
        };
        Ok(ContentVersion::with_sidecars(
            output.job_id,
            asset.captions.as_ref().map(|c| c.job_id),
            &asset.caption_tracks,
            key,
        ))
    }

    /// The asset's content key in use (its newest key not retired), without its plaintext.
    async fn key_record(&self, asset: AssetId) -> Result<Arc<ContentKey>, ApiError> {
        let rec = match self.asset_keys.get(&asset) {
            Some(k) => k,
            None => {
                let k = self
                    .protection
                    .store()
                    .list_content_keys(asset)
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .filter(|k| k.retired_at.is_none())
                    .max_by_key(|k| k.created_at)
                    .map(Arc::new);
                self.asset_keys.insert(asset, k.clone());
                k
            }
        };
        rec.ok_or_else(|| {
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_content_key",
                "the asset's delivery policy is protected but it has no content key",
            )
        })
    }

    /// The asset's content key (id and policy) and its plaintext.
    async fn content_key(&self, asset: AssetId) -> Result<(Arc<ContentKey>, Arc<Zeroizing<[u8; 16]>>), ApiError> {
        let rec = self.key_record(asset).await?;
        if let Some(p) = self.plain_keys.get(&rec.kid) {
            return Ok((rec, p));
        }
        let plain = Arc::new(self.protection.unwrap_content_key(&rec).await.map_err(unavailable)?);
        self.plain_keys.insert(rec.kid, plain.clone());
        Ok((rec, plain))
    }

    /// A rendition's progressive file: its description, read once per warm instance.
    async fn progressive(&self, key: &str, bucket: &str) -> Result<Arc<ProgressiveMap>, ApiError> {
        if let Some(v) = self.progressive.get(key) {
            return Ok(v);
        }
        let corrupt = |e: String| {
            warn!(key, error = %e, "unreadable progressive file description");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt",
                "progressive file description unreadable",
            )
        };
        let size_of = |key: String| async move {
            let meta = self
                .blobs
                .head(&BlobRef::new(bucket, &key))
                .await
                .map_err(unavailable)?
                .ok_or_else(|| not_found("the progressive file is missing"))?;
            Ok::<u64, ApiError>(meta.size)
        };
        let (file, head_len) = if key.ends_with(".mp4") {
            // A file that an earlier version stored whole (`progressive.mp4`): served as one run.
            let size = size_of(key.to_string()).await?;
            let whole = ProgressiveRun {
                key: key.to_string(),
                at: 0,
                size,
            };
            let file = ProgressiveFile {
                size,
                head: String::new(),
                runs: vec![whole],
                pages: None,
            };
            (file, 0)
        } else {
            let file: ProgressiveFile =
                serde_json::from_slice(&self.object(key, bucket).await?).map_err(|e| corrupt(e.to_string()))?;
            self.objects.invalidate(key);
            // A first-version description names its head object apart.
            let head_len = match file.head.is_empty() {
                true => 0,
                false => size_of(file.head.clone()).await?,
            };
            (file, head_len)
        };
        let map = Arc::new(ProgressiveMap::new(file, head_len).map_err(corrupt)?);
        self.progressive.insert(key.to_string(), map.clone());
        Ok(map)
    }

    /// Page `i` of a progressive file's runs: a ranged read of the pages' object, checked, cached.
    async fn run_page(
        &self,
        map: &ProgressiveMap,
        i: usize,
        bucket: &str,
    ) -> Result<Arc<Vec<ProgressiveRun>>, ApiError> {
        if let Some(runs) = map.held(i) {
            return Ok(Arc::new(runs.to_vec()));
        }
        let id = (map.pages_key().to_string(), i);
        if let Some(v) = self.run_pages.get(&id) {
            return Ok(v);
        }
        let corrupt = |e: String| {
            warn!(key = map.pages_key(), error = %e, "unreadable progressive file page");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt",
                "progressive file page unreadable",
            )
        };
        let page = map.page(i).ok_or_else(|| corrupt(format!("no page {i}")))?;
        let bytes = self
            .blobs
            .read_range(&BlobRef::new(bucket, map.pages_key()), page.at, page.len)
            .await
            .map_err(unavailable)?;
        let runs = Arc::new(map.parse_page(i, &bytes).map_err(corrupt)?);
        self.run_pages.insert(id, runs.clone());
        Ok(runs)
    }

    /// Bytes `start..=end` of a progressive file: the pages of runs that cover them, then ranged reads of those
    /// runs (`PROGRESSIVE_READS` at a time), in order.
    async fn assemble(&self, map: &ProgressiveMap, bucket: &str, start: u64, end: u64) -> Result<Vec<u8>, ApiError> {
        use futures::{StreamExt, TryStreamExt};
        let span = map.pages_for(start, end);
        let mut pages = Vec::with_capacity(span.len());
        for i in span.clone() {
            pages.push(self.run_page(map, i, bucket).await?);
        }
        let refs: Vec<&[ProgressiveRun]> = pages.iter().map(|p| p.as_slice()).collect();
        let pieces = map.pieces(span.start, &refs, start, end);
        // One body of the range's size, the runs appended as their reads arrive in order.
        let mut body = Vec::with_capacity((end - start + 1) as usize);
        let reads = pieces.into_iter().map(|p| async move {
            let bytes = self
                .blobs
                .read_range(&BlobRef::new(bucket, &p.key), p.at, p.len)
                .await
                .map_err(unavailable)?;
            if bytes.len() as u64 != p.len {
                return Err(unavailable(format!("{}: short read", p.key)));
            }
            Ok(bytes)
        });
        let mut runs = futures::stream::iter(reads).buffered(PROGRESSIVE_READS);
        while let Some(bytes) = runs.try_next().await? {
            body.extend_from_slice(&bytes);
        }
        if body.len() as u64 != end - start + 1 {
            return Err(unavailable("the progressive file's runs do not cover the range"));
        }
        Ok(body)
    }

    /// The cues of one of the asset's captions tracks (`sidecar`: its id; none: the speech's), parsed once per warm
    /// instance.
    async fn cues(&self, asset: &Asset, sidecar: Option<&str>) -> Result<Arc<Vec<Cue>>, ApiError> {
        let (key, bucket) = text_source(asset, sidecar)?;
        self.parsed(&self.cues, key, bucket, "caption cues").await
    }

    async fn index(&self, key: &str, bucket: &str) -> Result<Arc<SegmentIndex>, ApiError> {
        self.parsed(&self.indexes, key, bucket, "segment index").await
    }

    /// A JSON object written once per job (segment index, cues): read and parsed once, then served from `cache`.
    async fn parsed<T: serde::de::DeserializeOwned + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Arc<T>>,
        key: &str,
        bucket: &str,
        what: &'static str,
    ) -> Result<Arc<T>, ApiError> {
        if let Some(v) = cache.get(key) {
            return Ok(v);
        }
        let bytes = self.object(key, bucket).await?;
        self.objects.invalidate(key);
        let v: T = serde_json::from_slice(&bytes).map_err(|e| {
            warn!(key, error = %e, "unreadable {what}");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt",
                format!("{what} unreadable"),
            )
        })?;
        let v = Arc::new(v);
        cache.insert(key.to_string(), v.clone());
        Ok(v)
    }
}

struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    Reply {
        status,
        content_type,
        body,
        headers: Vec::new(),
    }
}

fn with_cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("content-length, content-range, etag, accept-ranges"),
    );
    r
}

/// Handles one packager request. Never panics on input; every failure is a JSON error.
pub async fn handle(ctx: &StreamContext, req: Request) -> Response<Body> {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("range, if-none-match, authorization"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("86400"));
        return with_cors(r);
    }
    if method != Method::GET && method != Method::HEAD {
        return with_cors(error_response(&err(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the packager answers GET, HEAD and OPTIONS",
        )));
    }
    let r = match route(ctx, &req).await {
        Ok(r) => r,
        Err(e) => return with_cors(error_response(&e)),
    };
    let etag = r.headers.iter().find(|(k, _)| *k == "etag").map(|(_, v)| v.clone());
    let matches = etag.as_deref().is_some_and(|tag| {
        req.headers()
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    });
    let len = r.body.len();
    let mut resp = if matches && r.status == StatusCode::OK {
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else if method == Method::HEAD {
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = r.status;
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        resp
    } else {
        let body = if r.content_type.starts_with("application/") && !r.content_type.ends_with("mp4") {
            Body::Text(String::from_utf8(r.body).unwrap_or_default())
        } else {
            Body::Binary(r.body)
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = r.status;
        resp
    };
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    with_cors(resp)
}

/// Where the cues of one of the asset's captions tracks are (object key, bucket), or why there are none.
fn text_source<'a>(asset: &'a Asset, sidecar: Option<&str>) -> Result<(&'a str, &'a str), ApiError> {
    match sidecar {
        None => asset
            .captions
            .as_ref()
            .map(|c| (c.cues.as_str(), c.bucket.as_str()))
            .ok_or_else(|| not_found("the asset has no captions (run an indexing job)")),
        Some(id) => vod_domain::sidecar::find(asset, id)
            .map(|t| (t.cues.as_str(), t.bucket.as_str()))
            .map_err(|e| not_found(e.to_string())),
    }
}

/// The captions tracks of an asset as manifests list them: the speech's first, then the sidecar tracks.
fn text_tracks(asset: &Asset) -> Vec<TextTrack> {
    let speech = asset.captions.iter().map(|c| TextTrack {
        language: c.language.clone(),
        name: caption_track_name(&c.language),
        path: vod_package::url::captions_track(None),
    });
    let sidecars = asset.caption_tracks.iter().map(|t| TextTrack {
        language: t.language.clone(),
        name: t.label.clone(),
        path: vod_package::url::captions_track(Some(&t.id)),
    });
    speech.chain(sidecars).collect()
}

/// The name players show for a captions track.
fn caption_track_name(language: &str) -> String {
    let lang = language.split('-').next().unwrap_or_default().to_ascii_lowercase();
    match lang.as_str() {
        "en" => "English (automatic)".into(),
        _ => format!("{language} (automatic)"),
    }
}

fn cache_control(max_age: u64, immutable: bool) -> String {
    if immutable {
        format!("public, max-age={max_age}, immutable")
    } else {
        format!("public, max-age={max_age}")
    }
}

fn enc_of(p: Protection) -> Option<Enc> {
    match p {
        Protection::Clear => None,
        Protection::Aes128 => Some(Enc::Aes128),
        Protection::Cenc => Some(Enc::Cenc),
        Protection::Cbcs => Some(Enc::Cbcs),
    }
}

fn blocked(protocol: Protocol) -> ApiError {
    err(
        StatusCode::FORBIDDEN,
        "protocol_blocked",
        format!("no delivery policy of this asset allows {protocol:?}"),
    )
}

/// The protection a protocol gets, or 403 if no policy allows it.
fn protection_for(policies: &[DeliveryPolicy], protocol: Protocol) -> Result<Option<&DeliveryPolicy>, ApiError> {
    match delivery_for(policies, protocol) {
        Delivery::Clear => Ok(None),
        Delivery::Protected(p) => Ok(Some(p)),
        Delivery::Blocked => Err(blocked(protocol)),
    }
}

/// A segment URL's scheme must be the one some streaming protocol is delivered with (no clear segments of a
/// protected asset, no scheme nobody asked for).
fn check_scheme(policies: &[DeliveryPolicy], enc: Option<Enc>) -> Result<Option<&DeliveryPolicy>, ApiError> {
    for protocol in [Protocol::Hls, Protocol::Dash] {
        match delivery_for(policies, protocol) {
            Delivery::Clear if enc.is_none() => return Ok(None),
            Delivery::Protected(p) if enc_of(p.protection) == enc => return Ok(Some(p)),
            _ => {}
        }
    }
    Err(err(
        StatusCode::FORBIDDEN,
        "encryption_required",
        "this asset is not delivered with that encryption",
    ))
}

/// The signalling of a policy's DRM systems (`vod_package::drm`): their `pssh` boxes, DASH and HLS elements.
fn signals(policy: &DeliveryPolicy, kid: [u8; 16]) -> Vec<Signal> {
    let scheme = match policy.protection {
        Protection::Cbcs => Scheme::Cbcs,
        _ => Scheme::Cenc,
    };
    let mut signals = Signal::of(&policy.drm, kid, scheme);
    if scheme == Scheme::Cbcs && !policy.drm.iter().any(|d| d.system == DrmId::FairPlay) {
        // cbcs HLS is always signalled FairPlay-style too (an `skd://` key of the key id), as before policies
        // could name FairPlay with its key server.
        signals.push(Signal {
            system: drm::system(DrmId::FairPlay),
            license_url: None,
            pssh: None,
        });
    }
    signals
}

/// The `pssh` boxes of a policy's DRM systems (for the protected init segment).
fn pssh_boxes(policy: &DeliveryPolicy, kid: [u8; 16]) -> Vec<Vec<u8>> {
    signals(policy, kid).into_iter().filter_map(|s| s.pssh).collect()
}

/// `#EXT-X-KEY` tags of an HLS media playlist.
fn hls_key_tags(policy: &DeliveryPolicy, key: &ContentKey) -> Vec<String> {
    let kid = key.kid.bytes();
    match policy.protection {
        Protection::Clear => Vec::new(),
        Protection::Aes128 => vec![format!("#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/{}\"", key.kid)],
        Protection::Cenc | Protection::Cbcs => {
            let method = if policy.protection == Protection::Cenc {
                "SAMPLE-AES-CTR"
            } else {
                "SAMPLE-AES"
            };
            signals(policy, kid)
                .iter()
                .filter_map(|s| s.hls_key(method, &kid))
                .collect()
        }
    }
}

/// Content protection elements of an MPD.
fn dash_protection(policy: &DeliveryPolicy, key: &ContentKey) -> Option<DashProtection> {
    let enc = enc_of(policy.protection)?;
    let systems = signals(policy, key.kid.bytes())
        .iter()
        .filter_map(Signal::dash)
        .collect();
    Some(DashProtection {
        enc,
        kid: key.kid.to_string(),
        systems,
    })
}

fn scheme_of(enc: Enc) -> Scheme {
    match enc {
        Enc::Cbcs => Scheme::Cbcs,
        _ => Scheme::Cenc,
    }
}

/// A request the resolve stage admitted: what it asks for, through which locator, of which asset, and how long
/// its responses may be cached.
struct Resolved {
    sreq: StreamRequest,
    locator: Arc<Locator>,
    asset: Arc<Asset>,
    /// Seconds the locator has left.
    left: u64,
    manifest_age: u64,
    segment_age: u64,
    /// The asset's current content version (written into manifests, required of everything else).
    version: ContentVersion,
}

/// The resolve stage, where a request is authorised: the URL parsed, the locator found, inside its time window and
/// of the kind the resource needs, its asset encoded. What the asset's delivery policies allow is checked by each
/// resource's stage (it depends on the protocol and scheme asked for).
async fn resolve(ctx: &StreamContext, req: &Request) -> Result<Resolved, ApiError> {
    let path = req.uri().path();
    let rel = path
        .strip_prefix(ctx.config.base_path.as_str())
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| not_found(format!("no route for {path}")))?;
    let sreq = vod_package::url::parse(rel, req.uri().query()).map_err(|e| match e {
        UrlError::BadRequest(m) => err(StatusCode::BAD_REQUEST, "bad_request", m),
        UrlError::NotFound(m) => not_found(m),
    })?;
    let locator = ctx.locator(sreq.locator).await?;
    // One spelling per URL: `{name}.ism` is the locator's own name, and the `filter` query is for manifests and
    // playlists only (a segment is the same whatever a manifest was filtered by).
    if sreq.name.as_ref().is_some_and(|n| *n != locator.name) {
        return Err(not_found(format!(
            "locator {} has no {}.ism",
            locator.id,
            sreq.name.as_deref().unwrap_or("")
        )));
    }
    let manifest = matches!(
        sreq.resource,
        Resource::Manifest { .. }
            | Resource::MediaPlaylist { .. }
            | Resource::IframePlaylist { .. }
            | Resource::TextPlaylist { .. }
    );
    if !manifest
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("filter")))
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the filter query applies to manifests and playlists only",
        ));
    }
    let now = Utc::now();
    match locator.window(now) {
        LocatorWindow::Active => {}
        LocatorWindow::NotYetValid(at) => {
            return Err(err(
                StatusCode::FORBIDDEN,
                "locator_not_yet_valid",
                format!("locator {} starts at {}", locator.id, at.to_rfc3339()),
            ))
        }
        LocatorWindow::Expired(at) => {
            return Err(err(
                StatusCode::GONE,
                "locator_expired",
                format!("locator {} ended at {}", locator.id, at.to_rfc3339()),
            ))
        }
    }
    let wanted = match sreq.resource {
        Resource::Progressive { .. } => LocatorKind::Download,
        _ => LocatorKind::Streaming,
    };
    if locator.kind != wanted {
        return Err(err(
            StatusCode::FORBIDDEN,
            "wrong_locator_kind",
            format!(
                "a {} locator does not grant this resource",
                serde_json::to_value(locator.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        ));
    }
    let asset = ctx.asset(locator.asset_id).await?;
    if asset.output.is_none() {
        return Err(not_found("asset has no output"));
    }
    let version = ctx.content_version(&asset).await?;
    if sreq.version.as_ref().is_some_and(|v| *v != version) {
        return Err(err(
            StatusCode::NOT_FOUND,
            "stale_version",
            "this version of the content is no longer served (the asset was encoded again, or its key or captions \
             changed): load the manifest again",
        ));
    }
    // Cached responses must not outlive the locator.
    let left = (locator.end - now).num_seconds().max(1) as u64;
    Ok(Resolved {
        sreq,
        manifest_age: ctx.config.manifest_ttl.as_secs().min(left),
        segment_age: left.min(ctx.config.segment_max_age.as_secs()),
        left,
        locator,
        asset,
        version,
    })
}

/// A resource asked for without a content version: a redirect to its current version's URL, cached no longer than
/// a manifest (so stable links — a download, the poster — keep working, and a cached object is only ever cached
/// under the version it belongs to).
fn to_current_version(ctx: &StreamContext, req: &Request, version: &ContentVersion, max_age: u64) -> Reply {
    let path = req.uri().path();
    let rel = path.strip_prefix(ctx.config.base_path.as_str()).unwrap_or(path);
    let mut location = format!(
        "{}{}",
        ctx.config.base_path,
        vod_package::url::with_version(rel, version).unwrap_or_else(|| rel.to_string())
    );
    if let Some(q) = req.uri().query() {
        location = format!("{location}?{q}");
    }
    let mut r = reply(StatusCode::FOUND, "application/json", b"{}".to_vec());
    r.headers.push(("location", location));
    r.headers.push(("cache-control", cache_control(max_age, false)));
    r
}

/// What a locator's own filters keep: its tracks and its time range. They bind segment requests as well as
/// manifests, so a track or a time a locator does not publish is not served under it, whatever URL asks.
struct LocatorSelection {
    tracks: Vec<String>,
    start: f64,
    end: f64,
}

impl LocatorSelection {
    /// 404 unless `track` (and segment `number` of its index) is kept.
    fn check(&self, track: &str, segment: Option<(&SegmentIndex, u32)>) -> Result<(), ApiError> {
        let kept = self.tracks.iter().any(|t| t == track)
            && segment.is_none_or(|(idx, n)| overlapping(idx, self.start, self.end).iter().any(|s| s.number == n));
        if kept {
            return Ok(());
        }
        Err(not_found(format!(
            "the locator's filters do not publish this part of {track}"
        )))
    }
}

/// The locator's own filters' selection, if it has filters.
async fn locator_selection(
    ctx: &StreamContext,
    locator: &Locator,
    output: &AssetOutput,
) -> Result<Option<LocatorSelection>, ApiError> {
    if locator.filters.is_empty() {
        return Ok(None);
    }
    let mut filters = Vec::new();
    for name in &locator.filters {
        filters.push((*ctx.filter(locator.asset_id, name).await?).clone());
    }
    let sel = select(output, &filters).map_err(|e| match e {
        DomainError::Invalid(m) => err(StatusCode::BAD_REQUEST, "empty_presentation", m),
        e => unavailable(e),
    })?;
    Ok(Some(LocatorSelection {
        tracks: sel
            .video
            .iter()
            .map(|r| r.name.clone())
            .chain(sel.audio.iter().map(|a| a.name.clone()))
            .collect(),
        start: sel.start,
        end: sel.end,
    }))
}

/// 416 for a range past the end of a `what` of `size` bytes (JSON body, `Content-Range: bytes */size`).
fn range_not_satisfiable(what: &str, size: u64) -> Reply {
    let mut r = reply(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "application/json",
        serde_json::to_vec(&serde_json::json!({"error": {"code": "range_not_satisfiable",
            "message": format!("the {what} has {size} bytes")}}))
        .unwrap_or_default(),
    );
    r.headers.push(("content-range", format!("bytes */{size}")));
    r
}

/// The packager's stages: resolve (authorisation), then per resource select and produce (manifest writers, or a
/// segment read and protected, or a progressive range assembled), then the response with its cache headers.
async fn route(ctx: &StreamContext, req: &Request) -> Result<Reply, ApiError> {
    let Resolved {
        sreq,
        locator,
        asset,
        left,
        manifest_age,
        segment_age,
        version,
    } = resolve(ctx, req).await?;
    if sreq.version.is_none() && !matches!(sreq.resource, Resource::Manifest { .. }) {
        return Ok(to_current_version(ctx, req, &version, manifest_age));
    }
    let path = req.uri().path();
    let Some(output) = asset.output.as_ref() else {
        return Err(not_found("asset has no output"));
    };
    let bucket = output.bucket.as_str();

    let index_key = |track: &str| -> Result<String, ApiError> {
        if let Some(a) = output.audio_track(track) {
            Some(a.index.clone())
        } else {
            output
                .renditions
                .iter()
                .find(|r| r.name == track)
                .map(|r| r.index.clone())
        }
        .ok_or_else(|| not_found(format!("no track {track}")))
    };

    match &sreq.resource {
        Resource::Manifest { .. }
        | Resource::MediaPlaylist { .. }
        | Resource::IframePlaylist { .. }
        | Resource::TextPlaylist { .. }
        | Resource::TextFile { .. } => {
            let protocol = match sreq.resource {
                Resource::Manifest {
                    format: Format::Dash, ..
                }
                | Resource::TextFile { .. } => Protocol::Dash,
                _ => Protocol::Hls,
            };
            let policy = protection_for(&asset.delivery_policies, protocol)?;
            let key = match policy {
                Some(_) => Some(ctx.content_key(asset.id).await?.0),
                None => None,
            };
            let mut filters = Vec::new();
            for name in locator.filters.iter().chain(sreq.filters.iter()) {
                filters.push((*ctx.filter(locator.asset_id, name).await?).clone());
            }
            let sel = select(output, &filters).map_err(|e| match e {
                DomainError::Invalid(m) => err(StatusCode::BAD_REQUEST, "empty_presentation", m),
                e => unavailable(e),
            })?;
            let mut indexes = Vec::new();
            for r in &sel.video {
                indexes.push(ctx.index(&r.index, bucket).await?);
            }
            let mut audio_indexes = Vec::new();
            for a in &sel.audio {
                audio_indexes.push(ctx.index(&a.index, bucket).await?);
            }
            let video: Vec<TrackTimeline> = sel
                .video
                .iter()
                .zip(indexes.iter())
                .map(|(r, idx)| TrackTimeline {
                    name: &r.name,
                    codecs: &r.codecs,
                    timescale: idx.timescale,
                    kind: TrackKind::Video {
                        width: r.width,
                        height: r.height,
                        frame_rate: r.frame_rate,
                        colour: r.colour,
                    },
                    segments: overlapping(idx, sel.start, sel.end),
                })
                .filter(|t| !t.segments.is_empty())
                .collect();
            let audio: Vec<TrackTimeline> = sel
                .audio
                .iter()
                .zip(audio_indexes.iter())
                .map(|(a, idx)| TrackTimeline {
                    name: &a.name,
                    codecs: &a.codecs,
                    timescale: idx.timescale,
                    kind: TrackKind::Audio {
                        channels: a.channels,
                        sample_rate: a.sample_rate,
                        language: a.language.clone(),
                        label: a.label.clone(),
                    },
                    segments: overlapping(idx, sel.start, sel.end),
                })
                .filter(|t| !t.segments.is_empty())
                .collect();
            if video.is_empty() && audio.is_empty() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "empty_presentation",
                    "the filters leave no segment",
                ));
            }
            let (body, content_type) = match &sreq.resource {
                Resource::Manifest { format, alias } => {
                    let p = Presentation {
                        video,
                        audio,
                        uri_prefix: if *alias {
                            format!("{}.ism/{version}/", locator.name)
                        } else {
                            format!("{version}/")
                        },
                        query: if sreq.filters.is_empty() {
                            String::new()
                        } else {
                            format!("?filter={}", sreq.filters.join(","))
                        },
                        text: text_tracks(&asset),
                        thumbnails: output.thumbnails.as_ref().filter(|_| sel.start <= 0.0),
                    };
                    match format {
                        Format::Hls => (hls::multivariant(&p), "application/vnd.apple.mpegurl"),
                        Format::Dash => {
                            let prot = policy.zip(key.as_deref()).and_then(|(p, k)| dash_protection(p, k));
                            (dash::mpd(&p, prot.as_ref()), "application/dash+xml")
                        }
                    }
                }
                Resource::MediaPlaylist { track } => {
                    let t = video
                        .iter()
                        .chain(audio.iter())
                        .find(|t| t.name == track)
                        .ok_or_else(|| not_found(format!("no track {track} in this presentation")))?;
                    let (enc, tags) = match policy.zip(key.as_deref()) {
                        Some((p, k)) => (enc_of(p.protection), hls_key_tags(p, k)),
                        None => (None, Vec::new()),
                    };
                    (hls::media(t, enc, &tags), "application/vnd.apple.mpegurl")
                }
                Resource::IframePlaylist { track } => {
                    let t = video
                        .iter()
                        .find(|t| t.name == track)
                        .ok_or_else(|| not_found(format!("no video track {track} in this presentation")))?;
                    let (enc, tags) = match policy.zip(key.as_deref()) {
                        Some((p, k)) => (enc_of(p.protection), hls_key_tags(p, k)),
                        None => (None, Vec::new()),
                    };
                    let body = hls::iframes(t, enc, &tags).ok_or_else(|| {
                        not_found(format!(
                            "the key frames of {track} are not indexed (encoded before I-frame playlists): encode \
                             again"
                        ))
                    })?;
                    (body, "application/vnd.apple.mpegurl")
                }
                Resource::TextPlaylist { sidecar } => {
                    text_source(&asset, sidecar.as_deref())?;
                    let reference = video
                        .first()
                        .or(audio.first())
                        .ok_or_else(|| not_found("no media track"))?;
                    (hls::subtitles(reference), "application/vnd.apple.mpegurl")
                }
                Resource::TextFile { sidecar } => {
                    // In presentation time: the period starts at the first kept segment.
                    let reference = video
                        .first()
                        .or(audio.first())
                        .ok_or_else(|| not_found("no media track"))?;
                    let (start, len) = (reference.start_secs(), reference.duration_secs());
                    let cues: Vec<Cue> = ctx
                        .cues(&asset, sidecar.as_deref())
                        .await?
                        .iter()
                        .filter(|c| c.end > start && c.start < start + len)
                        .map(|c| Cue {
                            start: (c.start - start).max(0.0),
                            end: (c.end - start).min(len),
                            text: c.text.clone(),
                        })
                        .collect();
                    (webvtt(&cues), "text/vtt")
                }
                _ => {
                    return Err(err(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "package_failed",
                        "not a manifest request",
                    ))
                }
            };
            info!(locator = %locator.id, path, "manifest");
            let mut r = reply(StatusCode::OK, content_type, body.into_bytes());
            r.headers.push(("etag", etag_of(&[&r.body])));
            r.headers.push(("cache-control", cache_control(manifest_age, false)));
            Ok(r)
        }
        Resource::Init { track, enc } => {
            if let Some(kept) = locator_selection(ctx, &locator, output).await? {
                kept.check(track, None)?;
            }
            let idx = ctx.index(&index_key(track)?, bucket).await?;
            let clear = ctx.object(&idx.init, bucket).await?;
            let body = match enc {
                None | Some(Enc::Aes128) => clear.as_ref().clone(),
                Some(e) => {
                    let policy = check_scheme(&asset.delivery_policies, Some(*e))?
                        .ok_or_else(|| not_found("no protected delivery"))?;
                    let (key, _) = ctx.content_key(asset.id).await?;
                    let boxes = pssh_boxes(policy, key.kid.bytes());
                    protect_init(&clear, scheme_of(*e), &key.kid.bytes(), &boxes).map_err(|e| {
                        warn!(error = %e, "init segment cannot be protected");
                        err(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "package_failed",
                            "cannot protect the init segment",
                        )
                    })?
                }
            };
            let tag = enc.map_or("clear", |e| e.as_str());
            let mut r = reply(StatusCode::OK, "video/mp4", body);
            r.headers
                .push(("etag", etag_of(&[idx.init.as_bytes(), tag.as_bytes(), &r.body])));
            r.headers.push(("cache-control", cache_control(segment_age, true)));
            Ok(r)
        }
        Resource::TextSegment { sidecar, number } => {
            protection_for(&asset.delivery_policies, Protocol::Hls)?;
            // Cue times stay absolute (X-TIMESTAMP-MAP maps them onto the media's timestamps).
            let reference = output
                .renditions
                .first()
                .map(|r| r.index.clone())
                .or_else(|| output.audio.first().map(|a| a.index.clone()))
                .ok_or_else(|| not_found("no media track"))?;
            let idx = ctx.index(&reference, bucket).await?;
            let seg = idx
                .segments
                .binary_search_by_key(number, |s| s.number)
                .ok()
                .and_then(|i| idx.segments.get(i))
                .ok_or_else(|| not_found(format!("no captions segment {number}")))?;
            let ts = idx.timescale.max(1) as f64;
            let cues = ctx.cues(&asset, sidecar.as_deref()).await?;
            let body = webvtt_segment(&cues, seg.start as f64 / ts, (seg.start + seg.duration) as f64 / ts);
            let mut r = reply(StatusCode::OK, "text/vtt", body.into_bytes());
            r.headers.push(("etag", etag_of(&[&r.body])));
            r.headers.push(("cache-control", cache_control(manifest_age, false)));
            Ok(r)
        }
        Resource::Segment { track, number, enc } | Resource::KeyFrame { track, number, enc } => {
            let key_frame_only = matches!(sreq.resource, Resource::KeyFrame { .. });
            check_scheme(&asset.delivery_policies, *enc)?;
            let idx = ctx.index(&index_key(track)?, bucket).await?;
            let seg = idx
                .segments
                .binary_search_by_key(number, |s| s.number)
                .ok()
                .map(|i| &idx.segments[i])
                .ok_or_else(|| not_found(format!("track {track} has no segment {number}")))?;
            if let Some(kept) = locator_selection(ctx, &locator, output).await? {
                kept.check(track, Some((&idx, *number)))?;
            }
            // A key frame alone: the segment's bytes through it, as a segment of its own.
            let (size, key_frame) = match (key_frame_only, seg.key_frame) {
                (false, _) => (seg.size, None),
                (true, Some(k)) => (k.at + k.len, Some(k)),
                (true, None) => {
                    return Err(not_found(format!(
                        "the key frame of {track} segment {number} is not indexed"
                    )))
                }
            };
            let tag = format!(
                "{}{}",
                if key_frame_only { "key-" } else { "" },
                enc.map_or("clear", |e| e.as_str())
            );
            // Encrypted bytes are deterministic per key: the key id is part of the tag.
            let key = match enc {
                Some(_) => Some(ctx.content_key(asset.id).await?),
                None => None,
            };
            let kid = key.as_ref().map(|(k, _)| k.kid.bytes()).unwrap_or_default();
            let etag = etag_of(&[seg.key.as_bytes(), &seg.size.to_le_bytes(), tag.as_bytes(), &kid]);
            let conditional = req
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            // Byte ranges of a clear segment (the entries of clear I-frame playlists).
            let range = match (enc, key_frame_only) {
                (None, false) => req.headers().get(http::header::RANGE).and_then(|v| v.to_str().ok()),
                _ => None,
            };
            let blob = BlobRef::new(bucket, &seg.key);
            let mut r = if size > MAX_BODY {
                if enc.is_some() || key_frame_only {
                    return Err(err(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "segment_too_large",
                        "the segment is too large to encrypt in one response",
                    ));
                }
                redirect(ctx, &blob, left).await?
            } else if conditional || (req.method() == Method::HEAD && enc.is_none() && !key_frame_only) {
                // Answered from the index alone: no S3 request.
                let mut r = reply(StatusCode::OK, "video/mp4", Vec::new());
                if !conditional {
                    r.headers.push(("content-length", seg.size.to_string()));
                }
                r
            } else if let Some(range) = range {
                match parse_range(Some(range), size) {
                    RangeOutcome::Partial { start, end } => {
                        let body = ctx
                            .blobs
                            .read_range(&blob, start, end - start + 1)
                            .await
                            .map_err(unavailable)?;
                        let mut r = reply(StatusCode::PARTIAL_CONTENT, "video/mp4", body);
                        r.headers.push(("content-range", format!("bytes {start}-{end}/{size}")));
                        r.headers.push(("etag", etag.clone()));
                        r.headers.push(("cache-control", cache_control(segment_age, true)));
                        r
                    }
                    RangeOutcome::Unsatisfiable => range_not_satisfiable("segment", size),
                    RangeOutcome::Full => {
                        let body = ctx.blobs.read_range(&blob, 0, size).await.map_err(unavailable)?;
                        reply(StatusCode::OK, "video/mp4", body)
                    }
                }
            } else {
                let mut clear = ctx.blobs.read_range(&blob, 0, size).await.map_err(unavailable)?;
                if let Some(k) = key_frame {
                    clear = vod_package::key_frame_fragment(&clear, k.at..k.at + k.len).map_err(|e| {
                        warn!(error = %e, "key frame cannot be cut out");
                        err(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "package_failed",
                            "cannot cut out the key frame",
                        )
                    })?;
                }
                let body = match (enc, &key) {
                    (None, _) | (_, None) => clear,
                    (Some(Enc::Aes128), Some((_, k))) => {
                        // HLS: IV = the segment's media sequence number (no IV attribute in EXT-X-KEY).
                        let iv = (*number as u128).to_be_bytes();
                        aes128_cbc_owned(k, &iv, clear).map_err(|e| {
                            warn!(error = %e, "AES-128 failed");
                            err(StatusCode::INTERNAL_SERVER_ERROR, "package_failed", "encryption failed")
                        })?
                    }
                    (Some(e), Some((rec, k))) => {
                        let protector = ctx.protector(&idx.init, bucket, scheme_of(*e), rec.kid.bytes()).await?;
                        protector.protect(clear, k, *number).map_err(|e| {
                            warn!(error = %e, "segment cannot be protected");
                            err(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "package_failed",
                                "cannot protect the segment",
                            )
                        })?
                    }
                };
                reply(StatusCode::OK, "video/mp4", body)
            };
            if r.status == StatusCode::OK {
                r.headers.push(("etag", etag));
                r.headers.push(("cache-control", cache_control(segment_age, true)));
            }
            if range.is_some() || (enc.is_none() && !key_frame_only) {
                r.headers.push(("accept-ranges", "bytes".into()));
            }
            Ok(r)
        }
        Resource::ThumbnailIndex | Resource::ThumbnailSheet { .. } | Resource::Poster => {
            let t = output
                .thumbnails
                .as_ref()
                .ok_or_else(|| not_found("the asset has no thumbnails (its preset made none)"))?;
            let (body, content_type) = match &sreq.resource {
                Resource::ThumbnailIndex => (
                    vod_package::thumbnails::webvtt(t, output.duration_secs).into_bytes(),
                    "text/vtt",
                ),
                Resource::ThumbnailSheet { number } if *number < t.sheet_count() => {
                    let blob = BlobRef::new(bucket, t.sheet_key(*number));
                    let sheet = ctx.blobs.get(&blob).await.map_err(unavailable)?;
                    (sheet.ok_or_else(|| not_found("the sheet is missing"))?, "image/jpeg")
                }
                Resource::Poster => {
                    let blob = BlobRef::new(bucket, &t.poster);
                    let poster = ctx.blobs.get(&blob).await.map_err(unavailable)?;
                    (poster.ok_or_else(|| not_found("the poster is missing"))?, "image/jpeg")
                }
                _ => return Err(not_found("no such thumbnail sheet")),
            };
            let mut r = reply(StatusCode::OK, content_type, body);
            r.headers
                .push(("etag", etag_of(&[t.sheets.as_bytes(), path.as_bytes(), &r.body])));
            r.headers.push(("cache-control", cache_control(segment_age, true)));
            Ok(r)
        }
        Resource::Progressive { rendition } => {
            // Progressive download is never dynamically encrypted: only a clear policy (or none) allows it.
            protection_for(&asset.delivery_policies, Protocol::Progressive)?;
            let key = output
                .renditions
                .iter()
                .find(|r| &r.name == rendition)
                .map(|r| r.progressive.clone())
                .ok_or_else(|| not_found(format!("no rendition {rendition}")))?;
            let map = &*ctx.progressive(&key, bucket).await?;
            let size = map.size();
            let range = req.headers().get(http::header::RANGE).and_then(|v| v.to_str().ok());
            let mut outcome = parse_range(range, size);
            let too_large = match outcome {
                RangeOutcome::Full => size > MAX_BODY,
                RangeOutcome::Partial { start, end } => end - start + 1 > MAX_BODY,
                RangeOutcome::Unsatisfiable => false,
            };
            // A storage-encrypted asset is never stored in the clear: it is served by ranges only.
            if too_large && asset.storage_key.is_none() {
                // More than one response carries: once the file is stored whole, the client is redirected to it
                // (S3 serves any range); until then it is asked for, ranges are shortened and a request for the
                // whole file is told to come back (never a silently truncated download).
                let stored = BlobRef::new(bucket, ProgressiveFile::stored_key(&key));
                let whole = match ctx.blobs.head(&stored).await {
                    Ok(Some(m)) => m.size == size,
                    _ => false,
                };
                if whole {
                    if let Ok(r) = redirect(ctx, &stored, left).await {
                        return Ok(r);
                    }
                } else {
                    ctx.request_materialize(output.job_id, rendition, &key).await;
                }
                if outcome == RangeOutcome::Full && ctx.queue.is_some() && !whole {
                    let mut r = reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "application/json",
                        serde_json::to_vec(&serde_json::json!({"error": {"code": "preparing",
                            "message": format!("the file has {size} bytes, more than one response carries: it is \
                                being stored for download; retry shortly, or request byte ranges")}}))
                        .unwrap_or_default(),
                    );
                    r.headers.push(("retry-after", "30".into()));
                    r.headers.push(("accept-ranges", "bytes".into()));
                    r.headers.push(("cache-control", "no-store".into()));
                    return Ok(r);
                }
            }
            if outcome == RangeOutcome::Full && size > MAX_BODY {
                // More than one response may carry: the first part, and the client ranges for the rest.
                outcome = RangeOutcome::Partial {
                    start: 0,
                    end: MAX_BODY - 1,
                };
            }
            let mut r = match outcome {
                RangeOutcome::Unsatisfiable => range_not_satisfiable("file", size),
                RangeOutcome::Full => reply(
                    StatusCode::OK,
                    "video/mp4",
                    ctx.assemble(map, bucket, 0, size - 1).await?,
                ),
                RangeOutcome::Partial { start, end } => {
                    // A range larger than one response may carry is shortened (the client asks for the rest).
                    let end = end.min(start + MAX_BODY - 1);
                    let body = ctx.assemble(map, bucket, start, end).await?;
                    let mut r = reply(StatusCode::PARTIAL_CONTENT, "video/mp4", body);
                    r.headers.push(("content-range", format!("bytes {start}-{end}/{size}")));
                    r
                }
            };
            r.headers.push(("accept-ranges", "bytes".into()));
            if r.status == StatusCode::OK || r.status == StatusCode::PARTIAL_CONTENT {
                // The description's key is per job and never rewritten: it names the content.
                r.headers
                    .push(("etag", etag_of(&[key.as_bytes(), &size.to_le_bytes()])));
                r.headers
                    .push(("cache-control", cache_control(segment_age.min(86_400), false)));
            }
            Ok(r)
        }
    }
}

/// A redirect to a presigned GET of the object, valid no longer than the locator (and at most an hour).
async fn redirect(ctx: &StreamContext, blob: &BlobRef, left_secs: u64) -> Result<Reply, ApiError> {
    let url = ctx
        .blobs
        .presign_get(blob, Duration::from_secs(left_secs.min(3600)))
        .await
        .map_err(unavailable)?;
    let mut r = reply(StatusCode::FOUND, "application/json", Vec::new());
    r.headers.push(("location", url));
    r.headers.push(("cache-control", "private, no-store".into()));
    Ok(r)
}
