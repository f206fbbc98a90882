//! Asset use cases: create (with upload instructions), list, get, delete, and ingest of an uploaded object
//! (record the file, probe it, move the asset to Probed or Error). Idempotent under repeated notifications.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use tracing::{info, warn};

use crate::error::{DomainError, StoreError};
use crate::ingest::ObjectCreated;
use crate::model::*;
use crate::ports::{AssetStore, BlobMeta, BlobStore};

/// Limits and names the service works with (from the function's configuration).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub upload_bucket: String,
    pub media_bucket: String,
    /// Uploads of at least this many bytes get multipart instructions.
    pub multipart_threshold: u64,
    /// Preferred part size of multipart uploads (S3: 5 MiB minimum, 10 000 parts maximum).
    pub part_size: u64,
    pub max_upload_size: u64,
    pub url_ttl: Duration,
    /// An asset still Uploaded this long after its upload was recorded has a probe that will never complete
    /// (every delivery timed out, ran out of memory or crashed): it is shown, and stored, as Error.
    pub probe_deadline: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            upload_bucket: "uploads".into(),
            media_bucket: "media".into(),
            multipart_threshold: 64 * 1024 * 1024,
            part_size: 16 * 1024 * 1024,
            max_upload_size: 5 * 1024 * 1024 * 1024 * 1024,
            url_ttl: Duration::from_secs(3600),
            probe_deadline: Duration::from_secs(2400),
        }
    }
}

/// Body of `POST /assets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetRequest {
    /// Display name; defaults to the file name.
    #[serde(default)]
    pub name: Option<String>,
    pub file_name: String,
    /// Size in bytes, if known; large sizes get multipart upload URLs.
    #[serde(default)]
    pub size: Option<u64>,
    /// Storage encryption: the uploader's 32-byte AES-256-CTR data key (base64), with which it encrypted the file
    /// (see `storage::ctr_apply`). Stored only KMS-wrapped.
    #[serde(default)]
    pub storage_encryption: Option<StorageEncryptionRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageEncryptionRequest {
    pub key: String,
}

/// What ingest did with a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    Probed(AssetId),
    Failed(AssetId, String),
    /// The same object version was already ingested.
    Duplicate(AssetId),
    /// The object is gone (deleted before ingest ran) or is not a source upload.
    Skipped(String),
}

const S3_MIN_PART: u64 = 5 * 1024 * 1024;
const S3_MAX_PARTS: u64 = 10_000;
/// Part URLs in one response (asset creation, `upload_parts` pages are up to 1000).
pub const PART_URLS_PAGE: u64 = 100;
const UPLOAD_PREFIX: &str = "uploads/";

/// Video codecs the encoder decodes (libavcodec's names); anything else is refused at ingest, by name.
pub const SUPPORTED_VIDEO_CODECS: &[&str] = &[
    "h264",
    "hevc",
    "av1",
    "vp9",
    "vp8",
    "prores",
    // DNxHD and DNxHR
    "dnxhd",
    "mpeg2video",
    "mpeg1video",
    // MPEG-4 Part 2 (and its DivX/Xvid variants)
    "mpeg4",
    "msmpeg4v3",
    "mjpeg",
    "dvvideo",
    "wmv1",
    "wmv2",
    "wmv3",
    "vc1",
    "flv1",
    "h263",
    "theora",
    "ffv1",
    "rawvideo",
];
/// Audio codecs the encoder decodes.
pub const SUPPORTED_AUDIO_CODECS: &[&str] = &[
    "aac",
    "mp3",
    "mp2",
    "ac3",
    "eac3",
    "flac",
    "vorbis",
    "opus",
    "alac",
    "wmav1",
    "wmav2",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s24le",
    "pcm_s24be",
    "pcm_s32le",
    "pcm_s32be",
    "pcm_f32le",
    "pcm_f32be",
    "pcm_f64le",
    "pcm_u8",
    "pcm_s8",
    // SMPTE 302M (PCM in MPEG-TS) and DVD/Blu-ray PCM
    "s302m",
    "pcm_dvd",
    "pcm_bluray",
];

/// Checks that every stream of a probed source can be processed.
pub fn check_supported(info: &vod_media::MediaInfo) -> Result<(), String> {
    for v in &info.video {
        if !SUPPORTED_VIDEO_CODECS.contains(&v.codec.as_str()) {
            return Err(format!("unsupported video codec {:?}", v.codec));
        }
        if v.width == 0 || v.height == 0 {
            return Err(format!("video stream has invalid size {}x{}", v.width, v.height));
        }
    }
    for a in &info.audio {
        if !SUPPORTED_AUDIO_CODECS.contains(&a.codec.as_str()) {
            return Err(format!("unsupported audio codec {:?}", a.codec));
        }
    }
    if !(info.duration_secs.is_finite() && info.duration_secs > 0.0) {
        return Err("the source has no duration".into());
    }
    Ok(())
}

/// Validates a file name given by a producer: it becomes part of an object key.
fn validate_file_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() || name.len() > 255 {
        return Err(DomainError::invalid("file_name must be 1 to 255 bytes"));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\\') || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "file_name must not contain slashes or control characters",
        ));
    }
    Ok(())
}

/// The asset use cases over the storage ports.
#[derive(Clone)]
pub struct AssetService {
    store: Arc<dyn AssetStore>,
    blobs: Arc<dyn BlobStore>,
    config: ServiceConfig,
    /// Wraps storage keys (storage-encrypted assets); without it such assets are refused.
    kms: Option<Arc<dyn crate::protection::KeyService>>,
    /// Container formats the probe reads beyond `vod-media`'s own (the ingest function's libavformat prober).
    formats: &'static [&'static dyn vod_media::ContainerFormat],
}

impl AssetService {
    pub fn new(store: Arc<dyn AssetStore>, blobs: Arc<dyn BlobStore>, config: ServiceConfig) -> Self {
        AssetService {
            store,
            blobs,
            config,
            kms: None,
            formats: &[],
        }
    }

    /// Probes with these container formats too (after `vod-media`'s own).
    pub fn with_formats(mut self, formats: &'static [&'static dyn vod_media::ContainerFormat]) -> Self {
        self.formats = formats;
        self
    }

    /// Enables storage encryption (the key service wraps each asset's data key).
    pub fn with_key_service(mut self, kms: Arc<dyn crate::protection::KeyService>) -> Self {
        self.kms = Some(kms);
        self
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Creates an asset awaiting its upload and returns where to upload it.
    pub async fn create_asset(&self, req: CreateAssetRequest) -> Result<CreatedAsset, DomainError> {
        validate_file_name(&req.file_name)?;
        let name = req.name.unwrap_or_else(|| req.file_name.clone());
        if name.is_empty() || name.len() > 1024 {
            return Err(DomainError::invalid("name must be 1 to 1024 bytes"));
        }
        if let Some(size) = req.size {
            if size > self.config.max_upload_size {
                return Err(DomainError::invalid(format!(
                    "size {size} exceeds the maximum upload size {}",
                    self.config.max_upload_size
                )));
            }
        }
        let id = AssetId::new_random();
        let key = format!("{UPLOAD_PREFIX}{id}/{}", req.file_name);
        let now = Utc::now();
        let asset = Asset {
            id,
            name,
            state: AssetState::Created,
            created_at: now,
            updated_at: now,
            upload_key: Some(key.clone()),
            source: None,
            media: None,
            error: None,
            output: None,
            delivery_policies: Vec::new(),
            captions: None,
            caption_tracks: Vec::new(),
            storage_key: match &req.storage_encryption {
                None => None,
                Some(se) => {
                    let kms = self
                        .kms
                        .as_ref()
                        .ok_or_else(|| DomainError::invalid("storage encryption is not configured"))?;
                    Some(
                        crate::storage::wrap_storage_key(kms.as_ref(), id, &se.key)
                            .await
                            .map_err(DomainError::Invalid)?,
                    )
                }
            },
            version: 0,
        };
        let blob = BlobRef::new(&self.config.upload_bucket, &key);
        let ttl = self.config.url_ttl;
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let upload = match req.size {
            Some(size) if size >= self.config.multipart_threshold => {
                let part_size = self.part_size_for(size);
                let count = size.div_ceil(part_size).max(1);
                let upload_id = self.blobs.create_multipart(&blob).await?;
                // The first page of part URLs; the rest (and a resumed upload's) come from `upload_parts`.
                let mut parts = Vec::new();
                for n in 1..=count.min(PART_URLS_PAGE) as i32 {
                    let url = self.blobs.presign_part(&blob, &upload_id, n, ttl).await?;
                    parts.push(PartUrl { part_number: n, url });
                }
                UploadInstructions::Multipart {
                    upload_id,
                    part_size,
                    part_count: count,
                    parts,
                    parts_path: format!("/assets/{id}/upload/parts"),
                    complete_path: format!("/assets/{id}/upload/complete"),
                    expires_at,
                }
            }
            _ => UploadInstructions::Single {
                method: "PUT".into(),
                url: self.blobs.presign_put(&blob, ttl).await?,
                expires_at,
            },
        };
        self.store.insert(&asset).await?;
        info!(asset_id = %id, key = %key, "asset created");
        Ok(CreatedAsset { asset, upload })
    }

    /// Part size of a multipart upload of `size` bytes: the configured size, at least S3's 5 MiB, and large enough
    /// that S3's 10,000 parts hold the file (5 TB at most: parts of up to 525 MiB).
    pub fn part_size_for(&self, size: u64) -> u64 {
        self.config.part_size.max(S3_MIN_PART).max(size.div_ceil(S3_MAX_PARTS))
    }

    /// A page of part URLs (`count` from part `from`) of the asset's multipart upload of `size` bytes, and the
    /// parts already stored: what a client needs to go on with an upload or resume an interrupted one.
    pub async fn upload_parts(
        &self,
        id: AssetId,
        upload_id: &str,
        size: u64,
        from: u64,
        count: u64,
    ) -> Result<UploadParts, DomainError> {
        let asset = self.get_asset(id).await?;
        let key = asset
            .upload_key
            .clone()
            .ok_or_else(|| DomainError::Conflict("asset was not created for an API upload".into()))?;
        if asset.state != AssetState::Created {
            return Err(DomainError::Conflict(format!(
                "asset {id} is {}: its upload is complete",
                asset.state.as_str()
            )));
        }
        if size < self.config.multipart_threshold || size > self.config.max_upload_size {
            return Err(DomainError::invalid(format!(
                "size must be within {}..={} bytes for a multipart upload",
                self.config.multipart_threshold, self.config.max_upload_size
            )));
        }
        if upload_id.is_empty() || from == 0 || !(1..=1000).contains(&count) {
            return Err(DomainError::invalid(
                "upload_id is required, from starts at 1 and count is 1 to 1000",
            ));
        }
        let part_size = self.part_size_for(size);
        let part_count = size.div_ceil(part_size).max(1);
        let blob = BlobRef::new(&self.config.upload_bucket, key);
        let uploaded = self
            .blobs
            .list_parts(&blob, upload_id)
            .await
            .map_err(|e| DomainError::invalid(format!("no such upload: {e}")))?;
        let ttl = self.config.url_ttl;
        let mut parts = Vec::new();
        for n in from..from.saturating_add(count).min(part_count + 1) {
            let url = self.blobs.presign_part(&blob, upload_id, n as i32, ttl).await?;
            parts.push(PartUrl {
                part_number: n as i32,
                url,
            });
        }
        Ok(UploadParts {
            upload_id: upload_id.to_string(),
            part_size,
            part_count,
            parts,
            uploaded,
            expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1)),
        })
    }

    /// Completes a multipart upload started by `create_asset`.
    pub async fn complete_upload(
        &self,
        id: AssetId,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Asset, DomainError> {
        let asset = self.get_asset(id).await?;
        let key = asset
            .upload_key
            .clone()
            .ok_or_else(|| DomainError::Conflict("asset was not created for an API upload".into()))?;
        if parts.is_empty() || parts.len() > S3_MAX_PARTS as usize {
            return Err(DomainError::invalid("parts must list 1 to 10000 parts"));
        }
        let mut sorted = parts.to_vec();
        sorted.sort_by_key(|p| p.part_number);
        if sorted.windows(2).any(|w| w[0].part_number == w[1].part_number) || sorted[0].part_number < 1 {
            return Err(DomainError::invalid("part numbers must be distinct and start at 1"));
        }
        self.blobs
            .complete_multipart(&BlobRef::new(&self.config.upload_bucket, key), upload_id, &sorted)
            .await
            .map_err(|e| DomainError::invalid(format!("completing the upload failed: {e}")))?;
        Ok(asset)
    }

    pub async fn get_asset(&self, id: AssetId) -> Result<Asset, DomainError> {
        let asset = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| DomainError::asset_not_found(id.to_string()))?;
        self.expire_probe(asset).await
    }

    pub async fn list_assets(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Asset>, DomainError> {
        let mut page = self.store.list(limit.clamp(1, 1000), cursor).await?;
        for a in page.items.iter_mut() {
            if a.state == AssetState::Uploaded {
                *a = self.expire_probe(a.clone()).await?;
            }
        }
        Ok(page)
    }

    /// The sweeper's part for assets: every asset Uploaded for longer than the probe's deadline ends in Error
    /// (see `expire_probe`), whether or not anyone reads it. Returns how many did.
    pub async fn sweep_uploads(&self) -> Result<u32, DomainError> {
        let mut expired = 0;
        for a in self.store.uploaded().await? {
            if self.expire_probe(a).await?.state == AssetState::Error {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// An asset Uploaded for longer than the probe's deadline ends in Error with the reason (a conditional
    /// update: a probe that completes meanwhile wins, and one that completes later finds the asset moved on).
    async fn expire_probe(&self, asset: Asset) -> Result<Asset, DomainError> {
        let deadline = chrono::Duration::from_std(self.config.probe_deadline).unwrap_or(chrono::Duration::MAX);
        if asset.state != AssetState::Uploaded || Utc::now() - asset.updated_at < deadline {
            return Ok(asset);
        }
        let mut next = asset.clone();
        next.state = AssetState::Error;
        next.error = Some(format!(
            "the probe did not complete within {} s of the upload: every attempt timed out, ran out of memory or \
             crashed",
            self.config.probe_deadline.as_secs()
        ));
        next.updated_at = Utc::now();
        match self.store.update(&next).await {
            Ok(stored) => {
                info!(asset_id = %asset.id, "probe deadline passed; asset in Error");
                Ok(stored)
            }
            Err(StoreError::Conflict(_)) => Ok(self
                .store
                .get(asset.id)
                .await?
                .ok_or_else(|| DomainError::asset_not_found(asset.id.to_string()))?),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an asset's objects (upload and outputs), then its records.
    pub async fn delete_asset(&self, id: AssetId) -> Result<(), DomainError> {
        let asset = self.get_asset(id).await?;
        let up = &self.config.upload_bucket;
        self.blobs.delete_prefix(up, &format!("{UPLOAD_PREFIX}{id}/")).await?;
        if let Some(src) = &asset.source {
            self.blobs.delete(&BlobRef::new(&src.bucket, &src.key)).await?;
        }
        self.blobs
            .delete_prefix(&self.config.media_bucket, &format!("assets/{id}/"))
            .await?;
        self.store.delete(id).await?;
        info!(asset_id = %id, "asset deleted");
        Ok(())
    }

    /// Handles one uploaded object: finds or creates its asset, records the file, probes it.
    /// Safe to call repeatedly for the same object: the second call is a no-op.
    pub async fn ingest(&self, obj: &ObjectCreated) -> Result<IngestOutcome, DomainError> {
        let blob = BlobRef::new(&obj.bucket, &obj.key);
        let Some(meta) = self.blobs.head(&blob).await? else {
            info!(bucket = %obj.bucket, key = %obj.key, "object no longer exists; nothing to ingest");
            return Ok(IngestOutcome::Skipped(format!("object {} no longer exists", obj.key)));
        };
        if obj.key.ends_with('/') {
            return Ok(IngestOutcome::Skipped(format!("{} is a folder marker", obj.key)));
        }
        let mut asset = self.asset_for_object(obj, &meta).await?;
        let id = asset.id;
        // Record the file (state Uploaded) unless this very object version was already handled.
        loop {
            // The upload key serves one upload: once its source is probed, a new object there changes nothing
            // (the asset, its outputs and its jobs keep the file that was probed; tasks check its ETag).
            if let Some(src) = &asset.source {
                if src.etag != meta.etag && matches!(asset.state, AssetState::Probed | AssetState::Ready) {
                    warn!(asset_id = %id, key = %obj.key, "a new upload to a probed asset's key is ignored");
                    return Ok(IngestOutcome::Skipped(format!(
                        "asset {id} already has its probed source; a new upload to {} is ignored",
                        obj.key
                    )));
                }
            }
            if let Some(src) = &asset.source {
                if src.etag == meta.etag
                    && src.key == obj.key
                    && matches!(asset.state, AssetState::Probed | AssetState::Ready | AssetState::Error)
                {
                    info!(asset_id = %id, "duplicate notification; asset already ingested");
                    return Ok(IngestOutcome::Duplicate(id));
                }
            }
            let mut next = asset.clone();
            next.state = AssetState::Uploaded;
            next.error = None;
            next.media = None;
            next.updated_at = Utc::now();
            next.source = Some(AssetFile {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                size: meta.size,
                etag: meta.etag.clone(),
                content_type: meta.content_type.clone(),
                uploaded_at: Utc::now(),
            });
            match self.store.update(&next).await {
                Ok(stored) => {
                    asset = stored;
                    break;
                }
                Err(StoreError::Conflict(_)) => asset = self.get_asset(id).await?,
                Err(e) => return Err(e.into()),
            }
        }

        let probed = self.probe(&blob, meta.size).await;
        let (state, media, error) = match probed {
            Ok(info) => match check_supported(&info) {
                Ok(()) => (AssetState::Probed, Some(info), None),
                Err(reason) => (AssetState::Error, Some(info), Some(reason)),
            },
            Err(reason) => (AssetState::Error, None, Some(reason)),
        };
        loop {
            let mut next = asset.clone();
            next.state = state;
            next.media = media.clone();
            next.error = error.clone();
            next.updated_at = Utc::now();
            match self.store.update(&next).await {
                Ok(_) => break,
                Err(StoreError::Conflict(_)) => {
                    // Someone else moved the asset on: finish only if it still describes this object version
                    // and nobody finished it.
                    asset = self.get_asset(id).await?;
                    let same = asset
                        .source
                        .as_ref()
                        .is_some_and(|s| s.etag == meta.etag && s.key == obj.key);
                    if !same || asset.state != AssetState::Uploaded {
                        return Ok(IngestOutcome::Duplicate(id));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match error {
            None => {
                info!(asset_id = %id, "asset probed");
                Ok(IngestOutcome::Probed(id))
            }
            Some(reason) => {
                warn!(asset_id = %id, %reason, "asset source rejected");
                Ok(IngestOutcome::Failed(id, reason))
            }
        }
    }

    /// The asset an object belongs to: the API-created asset whose upload key it is, or a new asset derived from
    /// the object version for uploads straight into the bucket.
    /// The ingest of `obj` was given up (its notification reached the dead-letter queue after every delivery:
    /// the probe kept failing, timing out or crashing): the asset that waits for this object's probe (state
    /// Uploaded, source = this object) ends in Error with `reason`. Returns the asset it failed, if any.
    pub async fn abandon_ingest(&self, obj: &ObjectCreated, reason: &str) -> Result<Option<AssetId>, DomainError> {
        let blob = BlobRef::new(&obj.bucket, &obj.key);
        let by_upload = obj
            .key
            .strip_prefix(UPLOAD_PREFIX)
            .filter(|_| obj.bucket == self.config.upload_bucket)
            .and_then(|rest| rest.split('/').next())
            .and_then(AssetId::parse);
        let id = match (by_upload, self.blobs.head(&blob).await?) {
            (Some(id), _) => id,
            (None, Some(meta)) => AssetId::for_object(&obj.bucket, &obj.key, &meta.etag),
            (None, None) => return Ok(None),
        };
        loop {
            let Some(asset) = self.store.get(id).await? else {
                return Ok(None);
            };
            let waiting = asset.state == AssetState::Uploaded
                && asset
                    .source
                    .as_ref()
                    .is_none_or(|s| s.key == obj.key && s.bucket == obj.bucket);
            if !waiting {
                return Ok(None);
            }
            let mut next = asset.clone();
            next.state = AssetState::Error;
            next.error = Some(reason.to_string());
            next.updated_at = Utc::now();
            match self.store.update(&next).await {
                Ok(_) => return Ok(Some(id)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn asset_for_object(&self, obj: &ObjectCreated, meta: &BlobMeta) -> Result<Asset, DomainError> {
        if obj.bucket == self.config.upload_bucket {
            if let Some(rest) = obj.key.strip_prefix(UPLOAD_PREFIX) {
                if let Some(id) = rest.split('/').next().and_then(AssetId::parse) {
                    if let Some(asset) = self.store.get(id).await? {
                        if asset.upload_key.as_deref() == Some(obj.key.as_str()) {
                            return Ok(asset);
                        }
                    }
                }
            }
        }
        let id = AssetId::for_object(&obj.bucket, &obj.key, &meta.etag);
        let name = obj.key.rsplit('/').next().unwrap_or(&obj.key).to_string();
        let fresh = Asset::new(id, name, AssetState::Uploaded);
        if self.store.insert(&fresh).await? {
            info!(asset_id = %id, key = %obj.key, "asset created for direct upload");
        }
        self.get_asset(id).await
    }

    /// Probes the object with the media demuxers, reading only the byte ranges they ask for.
    async fn probe(&self, blob: &BlobRef, size: u64) -> Result<vod_media::MediaInfo, String> {
        let source = BlobSource {
            blobs: self.blobs.clone(),
            blob: blob.clone(),
            size,
            handle: tokio::runtime::Handle::current(),
        };
        let formats = self.formats;
        match tokio::task::spawn_blocking(move || vod_media::probe_with(&source, vod_media::PROBE_TIME_BUDGET, formats))
            .await
        {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => Err(e.to_string()),
            Err(join) => Err(format!("probe failed unexpectedly: {join}")),
        }
    }
}

/// A blob seen as a random-access source; reads block on the async store from a blocking thread.
pub struct BlobSource {
    blobs: Arc<dyn BlobStore>,
    blob: BlobRef,
    size: u64,
    handle: tokio::runtime::Handle,
}

impl BlobSource {
    /// Must be created inside a Tokio runtime and read from a blocking thread (`spawn_blocking`).
    pub fn new(blobs: Arc<dyn BlobStore>, blob: BlobRef, size: u64) -> Self {
        BlobSource {
            blobs,
            blob,
            size,
            handle: tokio::runtime::Handle::current(),
        }
    }
}

impl vod_media::ReadAt for BlobSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if offset >= self.size || len == 0 {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(self.size - offset);
        self.handle
            .block_on(self.blobs.read_range(&self.blob, offset, len))
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryAssetStore, MemoryBlobStore};

    fn y4m(frames: usize) -> Vec<u8> {
        let (w, h) = (64usize, 48usize);
        let mut v = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
        for _ in 0..frames {
            v.extend_from_slice(b"FRAME\n");
            v.extend(std::iter::repeat_n(128u8, w * h * 3 / 2));
        }
        v
    }

    fn service() -> (AssetService, Arc<MemoryAssetStore>, Arc<MemoryBlobStore>) {
        let store = Arc::new(MemoryAssetStore::default());
        let blobs = Arc::new(MemoryBlobStore::default());
        let svc = AssetService::new(store.clone(), blobs.clone(), ServiceConfig::default());
        (svc, store, blobs)
    }

    fn created(bucket: &str, key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
        }
    }

    #[tokio::test]
    async fn api_upload_is_probed_once() {
        let (svc, _, blobs) = service();
        let c = svc
            .create_asset(CreateAssetRequest {
                storage_encryption: None,
                name: None,
                file_name: "clip.y4m".into(),
                size: Some(10),
            })
            .await
            .unwrap();
        assert!(matches!(c.upload, UploadInstructions::Single { .. }));
        let key = c.asset.upload_key.clone().unwrap();
        blobs.insert("uploads", &key, y4m(50));
        let first = svc.ingest(&created("uploads", &key)).await.unwrap();
        assert_eq!(first, IngestOutcome::Probed(c.asset.id));
        let again = svc.ingest(&created("uploads", &key)).await.unwrap();
        assert_eq!(again, IngestOutcome::Duplicate(c.asset.id));
        let a = svc.get_asset(c.asset.id).await.unwrap();
        assert_eq!(a.state, AssetState::Probed);
        let media = a.media.unwrap();
        assert_eq!(media.video[0].width, 64);
        assert!((media.duration_secs - 2.0).abs() < 0.041);
    }

    #[tokio::test]
    async fn direct_upload_creates_one_asset_and_bad_files_fail() {
        let (svc, store, blobs) = service();
        blobs.insert("uploads", "drop/a.y4m", y4m(5));
        let o1 = svc.ingest(&created("uploads", "drop/a.y4m")).await.unwrap();
        let o2 = svc.ingest(&created("uploads", "drop/a.y4m")).await.unwrap();
        let IngestOutcome::Probed(id) = o1 else {
            panic!("{o1:?}")
        };
        assert_eq!(o2, IngestOutcome::Duplicate(id));
        assert_eq!(store.list(10, None).await.unwrap().items.len(), 1);

        blobs.insert("uploads", "drop/bad.mp4", b"this is not a video at all".to_vec());
        let IngestOutcome::Failed(_, reason) = svc.ingest(&created("uploads", "drop/bad.mp4")).await.unwrap() else {
            panic!("expected failure")
        };
        assert!(reason.contains("unsupported format"), "{reason}");
        blobs.insert("uploads", "drop/empty.mp4", Vec::new());
        let out = svc.ingest(&created("uploads", "drop/empty.mp4")).await.unwrap();
        assert!(
            matches!(out, IngestOutcome::Failed(_, ref r) if r.contains("empty")),
            "{out:?}"
        );
        // A vanished object is skipped, not an error.
        assert!(matches!(
            svc.ingest(&created("uploads", "gone.mp4")).await.unwrap(),
            IngestOutcome::Skipped(_)
        ));
    }

    #[tokio::test]
    async fn create_validates_and_delete_removes_everything() {
        let (svc, store, blobs) = service();
        for bad in ["", "a/b.mp4", "..", "x\u{0}y"] {
            let r = svc
                .create_asset(CreateAssetRequest {
                    storage_encryption: None,
                    name: None,
                    file_name: bad.into(),
                    size: None,
                })
                .await;
            assert!(matches!(r, Err(DomainError::Invalid(_))), "{bad:?}");
        }
        let big = svc
            .create_asset(CreateAssetRequest {
                storage_encryption: None,
                name: Some("big".into()),
                file_name: "big.mp4".into(),
                size: Some(200 << 20),
            })
            .await
            .unwrap();
        let UploadInstructions::Multipart { parts, part_size, .. } = &big.upload else {
            panic!()
        };
        assert_eq!(parts.len() as u64, (200u64 << 20).div_ceil(*part_size));
        // A declared size of 5 TB: parts large enough for S3's 10,000, the URLs a page at a time.
        let size = 5u64 * 1000 * 1000 * 1000 * 1000;
        let huge = svc
            .create_asset(CreateAssetRequest {
                storage_encryption: None,
                name: None,
                file_name: "huge.mxf".into(),
                size: Some(size),
            })
            .await
            .unwrap();
        let UploadInstructions::Multipart {
            parts,
            part_size,
            part_count,
            upload_id,
            ..
        } = &huge.upload
        else {
            panic!()
        };
        assert!(*part_count <= 10_000 && part_size * part_count >= size);
        assert_eq!(parts.len() as u64, PART_URLS_PAGE, "the response is bounded");
        let page = svc
            .upload_parts(huge.asset.id, upload_id, size, 9_901, 1000)
            .await
            .unwrap();
        assert_eq!(page.parts.first().map(|p| p.part_number), Some(9_901));
        assert_eq!(page.parts.last().map(|p| p.part_number as u64), Some(*part_count));
        assert!(svc.upload_parts(huge.asset.id, upload_id, size, 0, 10).await.is_err());
        assert!(svc.upload_parts(huge.asset.id, upload_id, size, 1, 1001).await.is_err());
        let key = big.asset.upload_key.clone().unwrap();
        blobs.insert("uploads", &key, y4m(2));
        blobs.insert("media", &format!("assets/{}/x", big.asset.id), vec![1]);
        svc.delete_asset(big.asset.id).await.unwrap();
        assert!(!blobs.contains("uploads", &key));
        assert!(!blobs.contains("media", &format!("assets/{}/x", big.asset.id)));
        assert!(store.get(big.asset.id).await.unwrap().is_none());
        assert!(matches!(
            svc.delete_asset(big.asset.id).await,
            Err(DomainError::NotFound { .. })
        ));
    }
}
