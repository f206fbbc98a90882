//! Delivery: Locators (time-bound grants to stream or download an asset) and Filters (presentation time range and
//! track selection applied to the stored renditions), the rules that create and apply them, and their store port.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, StoreError};
use crate::model::{AssetId, AssetOutput, AssetState, AudioRendition, Rendition};
use crate::ports::AssetStore;

/// Identifier of a locator; it is the first element of every streaming URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocatorId(pub Uuid);

impl LocatorId {
    pub fn new_random() -> Self {
        LocatorId(Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(LocatorId)
    }
}

impl std::fmt::Display for LocatorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The content version of an asset's streams: one path element under `{name}.ism/` in every segment, init,
/// playlist, caption and thumbnail URL, derived from what those bytes depend on (the encoding job of the output,
/// the indexing job of the captions, the content key in use). A new encode, new captions or a replaced key give new
/// URLs, so a CDN never serves a cached object of an older version under the current one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentVersion(String);

impl ContentVersion {
    /// `v.` and 16 hex digits (the `.` keeps it apart from track names, which have none).
    pub fn of(
        output_job: crate::job::JobId,
        captions_job: Option<crate::job::JobId>,
        key: Option<crate::protection::KeyId>,
    ) -> Self {
        Self::with_sidecars(output_job, captions_job, &[], key)
    }

    /// [`of`](Self::of) with the asset's sidecar caption tracks: each track's id and cues object (unique per upload),
    /// so adding, replacing or deleting one gives a new version (without any, the version `of` gives).
    pub fn with_sidecars(
        output_job: crate::job::JobId,
        captions_job: Option<crate::job::JobId>,
        sidecars: &[crate::sidecar::CaptionTrack],
        key: Option<crate::protection::KeyId>,
    ) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(output_job.to_string());
        h.update([0u8]);
        h.update(captions_job.map(|j| j.to_string()).unwrap_or_default());
        h.update([0u8]);
        h.update(key.map(|k| k.to_string()).unwrap_or_default());
        for t in sidecars {
            h.update([1u8]);
            h.update(&t.id);
            h.update([0u8]);
            h.update(&t.cues);
        }
        let d = h.finalize();
        let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        ContentVersion(format!("v.{hex}"))
    }

    /// A path element that is spelled like a content version (whether it is the current one is another question).
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("v.")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| ContentVersion(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a locator grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocatorKind {
    /// HLS and DASH manifests and their segments through the packager.
    Streaming,
    /// The progressive MP4 of every rendition (through the packager, with Range).
    Download,
}

/// A read-only, time-bound grant to an asset's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locator {
    pub id: LocatorId,
    pub asset_id: AssetId,
    pub kind: LocatorKind,
    /// The manifest name in URLs (`/{locator}/{name}.ism/manifest`), derived from the asset's name.
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Names of filters applied to every manifest of this locator (asset filters first, then global ones).
    #[serde(default)]
    pub filters: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Why a locator cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocatorWindow {
    Active,
    NotYetValid(DateTime<Utc>),
    Expired(DateTime<Utc>),
}

impl Locator {
    pub fn window(&self, now: DateTime<Utc>) -> LocatorWindow {
        if now < self.start {
            LocatorWindow::NotYetValid(self.start)
        } else if now >= self.end {
            LocatorWindow::Expired(self.end)
        } else {
            LocatorWindow::Active
        }
    }
}

/// Which tracks a filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackType {
    Video,
    Audio,
}

/// One track condition of a filter (AMS's `FilterTrackSelection`): the type, an inclusive bitrate range written
/// like AMS's `"0-2427000"`, and for audio a language (its primary subtag matched: "fr" keeps "fr-CA" and "fr").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSelection {
    #[serde(rename = "type")]
    pub track_type: TrackType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A named dynamic filter, either for one asset or global (`asset_id` = None).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<AssetId>,
    /// Presentation time range in seconds; segments overlapping it are kept (snapped to segment boundaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// Tracks kept: a track is kept if any selection matches it. Empty keeps every track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackSelection>,
}

/// Parses an inclusive bitrate range `"min-max"` (either side may be empty: `"-600000"`, `"600000-"`).
pub fn parse_bitrate_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("bitrate range {s:?} must look like 0-2427000"))?;
    let num = |t: &str, default: u64| -> Result<u64, String> {
        let t = t.trim();
        if t.is_empty() {
            Ok(default)
        } else {
            t.parse().map_err(|_| format!("bitrate range {s:?} must be numbers"))
        }
    };
    let (lo, hi) = (num(a, 0)?, num(b, u64::MAX)?);
    if lo > hi {
        return Err(format!("bitrate range {s:?} is empty"));
    }
    Ok((lo, hi))
}

/// Filter names are URL elements: letters, digits, `-`, `_`, `.`.
pub fn valid_filter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Filter {
    pub fn validate(&self) -> Result<(), String> {
        if !valid_filter_name(&self.name) {
            return Err("filter name must be 1 to 64 letters, digits, '-', '_' or '.'".into());
        }
        for (what, v) in [("start", self.start), ("end", self.end)] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(format!("filter {what} must be a time in seconds ≥ 0"));
                }
            }
        }
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if e <= s {
                return Err("filter end must be after its start".into());
            }
        }
        for t in &self.tracks {
            if let Some(b) = &t.bitrate {
                parse_bitrate_range(b)?;
            }
            if let Some(l) = &t.language {
                if t.track_type != TrackType::Audio || vod_media::language_tag(l).is_none() {
                    return Err(format!(
                        "track language {l:?} must be a language tag (like \"fr\") of an audio track"
                    ));
                }
            }
        }
        Ok(())
    }

    fn keeps_video(&self, r: &Rendition) -> bool {
        self.tracks.is_empty()
            || self.tracks.iter().any(|t| {
                t.track_type == TrackType::Video
                    && t.bitrate
                        .as_deref()
                        .is_none_or(|b| parse_bitrate_range(b).is_ok_and(|(lo, hi)| (lo..=hi).contains(&r.bitrate)))
            })
    }

    fn keeps_audio(&self, a: &AudioRendition) -> bool {
        self.tracks.is_empty()
            || self.tracks.iter().any(|t| {
                t.track_type == TrackType::Audio
                    && t.bitrate
                        .as_deref()
                        .is_none_or(|b| parse_bitrate_range(b).is_ok_and(|(lo, hi)| (lo..=hi).contains(&a.bitrate)))
                    && t.language
                        .as_deref()
                        .is_none_or(|want| a.language.as_deref().is_some_and(|l| vod_media::same_language(l, want)))
            })
    }
}

/// The presentation a request gets after its filters: the kept tracks and a time range in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection<'a> {
    pub video: Vec<&'a Rendition>,
    pub audio: Vec<&'a AudioRendition>,
    pub start: f64,
    pub end: f64,
}

/// Applies filters in order: time ranges intersect, track selections all have to keep a track.
pub fn select<'a>(output: &'a AssetOutput, filters: &[Filter]) -> Result<Selection<'a>, DomainError> {
    let mut start: f64 = 0.0;
    let mut end = output.duration_secs;
    for f in filters {
        start = start.max(f.start.unwrap_or(0.0));
        end = end.min(f.end.unwrap_or(f64::INFINITY));
    }
    if end <= start {
        return Err(DomainError::invalid(format!(
            "the filters leave no content: the range {start:.3}–{end:.3} s of a {:.3} s asset is empty",
            output.duration_secs
        )));
    }
    let video: Vec<&Rendition> = output
        .renditions
        .iter()
        .filter(|r| filters.iter().all(|f| f.keeps_video(r)))
        .collect();
    let audio: Vec<&AudioRendition> = output
        .audio
        .iter()
        .filter(|a| filters.iter().all(|f| f.keeps_audio(a)))
        .collect();
    if video.is_empty() && audio.is_empty() {
        return Err(DomainError::invalid("the filters select no track"));
    }
    Ok(Selection {
        video,
        audio,
        start,
        end,
    })
}

/// Persistence of locators and filters.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn put_locator(&self, locator: &Locator) -> Result<(), StoreError>;
    async fn get_locator(&self, id: LocatorId) -> Result<Option<Locator>, StoreError>;
    async fn delete_locator(&self, id: LocatorId) -> Result<(), StoreError>;
    async fn list_locators(&self, asset: AssetId) -> Result<Vec<Locator>, StoreError>;
    /// Stores (creates or replaces) a filter in its scope (its asset, or global).
    async fn put_filter(&self, filter: &Filter) -> Result<(), StoreError>;
    async fn get_filter(&self, asset: Option<AssetId>, name: &str) -> Result<Option<Filter>, StoreError>;
    async fn list_filters(&self, asset: Option<AssetId>) -> Result<Vec<Filter>, StoreError>;
    async fn delete_filter(&self, asset: Option<AssetId>, name: &str) -> Result<(), StoreError>;
}

/// A request to publish an asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLocatorRequest {
    pub asset: AssetId,
    pub kind: LocatorKind,
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// Alternative to `end`: seconds from `start`.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub filters: Vec<String>,
}

/// The longest a locator may live (AMS allowed 100 years; a year keeps mistakes bounded).
pub const MAX_LOCATOR_DAYS: i64 = 366;
/// The default life of a locator without `end` or `duration_secs`.
pub const DEFAULT_LOCATOR_HOURS: i64 = 24;

/// Turns an asset name into a manifest name usable in URLs.
pub fn manifest_name(asset_name: &str) -> String {
    let stem = asset_name.rsplit_once('.').map_or(asset_name, |(s, _)| s);
    let mut out: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "stream".into()
    } else {
        out
    }
}

/// Most wildcard paths one invalidation names (CloudFront runs at most 15 wildcard paths at a time): an asset
/// with more locators has the whole stream path invalidated instead.
pub const MAX_INVALIDATION_PATHS: usize = 10;

/// Locator and filter use cases.
#[derive(Clone)]
pub struct DeliveryService {
    assets: Arc<dyn AssetStore>,
    store: Arc<dyn DeliveryStore>,
    cdn: Arc<dyn crate::ports::CdnCache>,
    /// The CDN path of the packager's routes (`/stream`).
    stream_path: String,
    /// When every invalidation is repeated: after the packager's instances can have stopped trusting what they
    /// cached (a CDN miss served by an instance still holding the old locator or asset would otherwise be cached
    /// again after the first invalidation).
    recheck_after: Option<std::time::Duration>,
}

impl DeliveryService {
    pub fn new(assets: Arc<dyn AssetStore>, store: Arc<dyn DeliveryStore>) -> Self {
        DeliveryService {
            assets,
            store,
            cdn: Arc::new(crate::ports::NoCdn),
            stream_path: "/stream".into(),
            recheck_after: None,
        }
    }

    /// Repeats every invalidation `after` the first (longer than the packager trusts its cached records, plus its
    /// longest response).
    pub fn with_cdn_recheck(mut self, after: std::time::Duration) -> Self {
        self.recheck_after = Some(after);
        self
    }

    /// Invalidates `paths` once, now (a deferred invalidation coming due).
    pub async fn invalidate_paths(&self, paths: &[String]) -> Result<(), DomainError> {
        Ok(self.cdn.invalidate(paths).await?)
    }

    /// The CDN whose cached copies of a locator's paths are dropped when what they serve changes, and the CDN path
    /// of the packager's routes.
    pub fn with_cdn(mut self, cdn: Arc<dyn crate::ports::CdnCache>, stream_path: &str) -> Self {
        self.cdn = cdn;
        self.stream_path = stream_path.trim_end_matches('/').to_string();
        self
    }

    /// The CDN paths to drop for these locators: one wildcard each, or the whole stream path beyond
    /// [`MAX_INVALIDATION_PATHS`].
    pub fn cdn_paths(&self, locators: &[LocatorId]) -> Vec<String> {
        if locators.len() > MAX_INVALIDATION_PATHS {
            return vec![format!("{}/*", self.stream_path)];
        }
        locators.iter().map(|l| format!("{}/{l}/*", self.stream_path)).collect()
    }

    /// Drops the CDN's cached copies of every locator of `asset` (after a delete, a delivery policy change or a
    /// key retirement). Returns the paths invalidated.
    pub async fn invalidate_asset(&self, asset: AssetId) -> Result<Vec<String>, DomainError> {
        let ids: Vec<LocatorId> = self.store.list_locators(asset).await?.iter().map(|l| l.id).collect();
        self.invalidate(&ids).await
    }

    /// Best effort: what is deleted stays deleted when the CDN cannot be told (its copies then expire within the
    /// segments' max-age); the failure is logged as an error for the function's alarm.
    async fn invalidate(&self, locators: &[LocatorId]) -> Result<Vec<String>, DomainError> {
        if locators.is_empty() {
            return Ok(Vec::new());
        }
        let paths = self.cdn_paths(locators);
        let first = self.cdn.invalidate(&paths).await;
        if let Err(e) = &first {
            tracing::error!(error = %e, paths = paths.len(), "CDN invalidation failed; cached copies expire with their max-age");
        }
        if let Some(after) = self.recheck_after {
            if let Err(e) = self.cdn.invalidate_later(&paths, after).await {
                tracing::error!(error = %e, paths = paths.len(), "the CDN invalidation could not be scheduled again");
            }
        }
        Ok(if first.is_ok() { paths } else { Vec::new() })
    }

    pub fn store(&self) -> &Arc<dyn DeliveryStore> {
        &self.store
    }

    /// Creates a locator for a Ready asset; its filters must exist.
    pub async fn create_locator(&self, req: CreateLocatorRequest) -> Result<Locator, DomainError> {
        let asset = self
            .assets
            .get(req.asset)
            .await?
            .ok_or_else(|| DomainError::asset_not_found(req.asset.to_string()))?;
        if asset.state != AssetState::Ready || asset.output.is_none() {
            return Err(DomainError::Conflict(format!(
                "asset {} is {} — only encoded (Ready) assets can be published",
                asset.id,
                asset.state.as_str()
            )));
        }
        if asset.storage_key.is_some() && asset.delivery_policies.is_empty() {
            return Err(DomainError::Conflict(
                "a storage-encrypted asset needs a delivery policy before it can be published".into(),
            ));
        }
        let now = Utc::now();
        let start = req.start.unwrap_or(now);
        let end = match (req.end, req.duration_secs) {
            (Some(_), Some(_)) => return Err(DomainError::invalid("give either end or duration_secs, not both")),
            (Some(e), None) => e,
            (None, Some(d)) => {
                let d = i64::try_from(d).map_err(|_| DomainError::invalid("duration_secs is too large"))?;
                if d > MAX_LOCATOR_DAYS * 86_400 {
                    return Err(DomainError::invalid(format!(
                        "a locator lives at most {MAX_LOCATOR_DAYS} days"
                    )));
                }
                start + ChronoDuration::seconds(d)
            }
            (None, None) => start + ChronoDuration::hours(DEFAULT_LOCATOR_HOURS),
        };
        if end <= start {
            return Err(DomainError::invalid("the locator's end must be after its start"));
        }
        if end - start > ChronoDuration::days(MAX_LOCATOR_DAYS) {
            return Err(DomainError::invalid(format!(
                "a locator lives at most {MAX_LOCATOR_DAYS} days"
            )));
        }
        if req.filters.len() > 8 {
            return Err(DomainError::invalid("at most 8 filters per locator"));
        }
        // The filters must exist now (and are resolved again at request time, so edits take effect).
        self.resolve_filters(req.asset, &req.filters).await?;
        let locator = Locator {
            id: LocatorId::new_random(),
            asset_id: req.asset,
            kind: req.kind,
            name: manifest_name(&asset.name),
            start,
            end,
            filters: req.filters,
            created_at: now,
        };
        self.store.put_locator(&locator).await?;
        Ok(locator)
    }

    pub async fn get_locator(&self, id: LocatorId) -> Result<Locator, DomainError> {
        self.store.get_locator(id).await?.ok_or_else(|| DomainError::NotFound {
            kind: "locator",
            id: id.to_string(),
        })
    }

    /// Unpublishes a locator: deleted, then its paths dropped from the CDN.
    pub async fn delete_locator(&self, id: LocatorId) -> Result<(), DomainError> {
        self.get_locator(id).await?;
        self.store.delete_locator(id).await?;
        self.invalidate(&[id]).await?;
        Ok(())
    }

    pub async fn list_locators(&self, asset: AssetId) -> Result<Vec<Locator>, DomainError> {
        Ok(self.store.list_locators(asset).await?)
    }

    /// Deletes an asset's locators and filters (when the asset is deleted) and drops the locators' paths from
    /// the CDN.
    pub async fn delete_for_asset(&self, asset: AssetId) -> Result<(), DomainError> {
        let mut ids = Vec::new();
        for l in self.store.list_locators(asset).await? {
            self.store.delete_locator(l.id).await?;
            ids.push(l.id);
        }
        for f in self.store.list_filters(Some(asset)).await? {
            self.store.delete_filter(Some(asset), &f.name).await?;
        }
        self.invalidate(&ids).await?;
        Ok(())
    }

    pub async fn put_filter(&self, filter: Filter) -> Result<Filter, DomainError> {
        filter.validate().map_err(DomainError::Invalid)?;
        if let Some(a) = filter.asset_id {
            self.assets
                .get(a)
                .await?
                .ok_or_else(|| DomainError::asset_not_found(a.to_string()))?;
        }
        self.store.put_filter(&filter).await?;
        Ok(filter)
    }

    pub async fn get_filter(&self, asset: Option<AssetId>, name: &str) -> Result<Filter, DomainError> {
        self.store
            .get_filter(asset, name)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                kind: "filter",
                id: name.to_string(),
            })
    }

    pub async fn list_filters(&self, asset: Option<AssetId>) -> Result<Vec<Filter>, DomainError> {
        Ok(self.store.list_filters(asset).await?)
    }

    pub async fn delete_filter(&self, asset: Option<AssetId>, name: &str) -> Result<(), DomainError> {
        self.get_filter(asset, name).await?;
        Ok(self.store.delete_filter(asset, name).await?)
    }

    /// Looks filters up by name: the asset's own filter first, then a global one of that name.
    pub async fn resolve_filters(&self, asset: AssetId, names: &[String]) -> Result<Vec<Filter>, DomainError> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if !valid_filter_name(n) {
                return Err(DomainError::invalid(format!("{n:?} is not a filter name")));
            }
            let f = match self.store.get_filter(Some(asset), n).await? {
                Some(f) => f,
                None => self
                    .store
                    .get_filter(None, n)
                    .await?
                    .ok_or_else(|| DomainError::NotFound {
                        kind: "filter",
                        id: n.clone(),
                    })?,
            };
            out.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 item 2: every input of a stream's bytes changes its content version; the same inputs give the
    /// same version (every warm packager instance writes the same URLs).
    #[test]
    fn content_versions_change_with_the_encode_the_captions_and_the_key() {
        use crate::job::JobId;
        use crate::protection::KeyId;
        let (job, job2) = (JobId::new_random(), JobId::new_random());
        let (cap, key, key2) = (JobId::new_random(), KeyId::new_random(), KeyId::new_random());
        let v = ContentVersion::of(job, Some(cap), Some(key));
        assert_eq!(v, ContentVersion::of(job, Some(cap), Some(key)));
        let others = [
            ContentVersion::of(job2, Some(cap), Some(key)),
            ContentVersion::of(job, None, Some(key)),
            ContentVersion::of(job, Some(cap), None),
            ContentVersion::of(job, Some(cap), Some(key2)),
        ];
        for o in &others {
            assert_ne!(&v, o);
        }
        // Sidecar caption tracks: none is the version `of` gives; each track's id and cues object count.
        let track = |id: &str, cues: &str| crate::sidecar::CaptionTrack {
            id: id.into(),
            language: "fr".into(),
            label: "Français".into(),
            format: crate::captions::CaptionFormat::Srt,
            bucket: "media".into(),
            cues: cues.into(),
            vtt: "v".into(),
            cue_count: 1,
            created_at: chrono::Utc::now(),
        };
        assert_eq!(ContentVersion::with_sidecars(job, Some(cap), &[], Some(key)), v);
        let one = ContentVersion::with_sidecars(job, Some(cap), &[track("fr-1", "a")], Some(key));
        assert_ne!(one, v);
        assert_ne!(
            one,
            ContentVersion::with_sidecars(job, Some(cap), &[track("fr-1", "b")], Some(key))
        );
        assert_ne!(
            one,
            ContentVersion::with_sidecars(job, Some(cap), &[track("fr-2", "a")], Some(key))
        );
        assert_eq!(ContentVersion::parse(v.as_str()), Some(v.clone()));
        assert_eq!(v.as_str().len(), 18);
        for bad in [
            "v.0123",
            "v.0123456789ABCDEF",
            "v0123456789abcdef",
            "720p",
            "v.0123456789abcdeg",
        ] {
            assert_eq!(ContentVersion::parse(bad), None, "{bad}");
        }
    }

    /// Records what the service asked the CDN to drop, now (`.0`) and later (`.1`).
    #[derive(Default)]
    #[allow(clippy::type_complexity)]
    struct RecordingCdn(
        std::sync::Mutex<Vec<Vec<String>>>,
        std::sync::Mutex<Vec<(Vec<String>, std::time::Duration)>>,
    );

    #[async_trait]
    impl crate::ports::CdnCache for RecordingCdn {
        async fn invalidate(&self, paths: &[String]) -> Result<(), StoreError> {
            self.0.lock().expect("the recording lock").push(paths.to_vec());
            Ok(())
        }
        async fn invalidate_later(&self, paths: &[String], delay: std::time::Duration) -> Result<(), StoreError> {
            self.1.lock().expect("the recording lock").push((paths.to_vec(), delay));
            Ok(())
        }
    }

    /// A streaming locator of `asset`, valid for the next hour.
    fn hour_long_locator(asset: AssetId) -> Locator {
        let now = Utc::now();
        Locator {
            id: LocatorId::new_random(),
            asset_id: asset,
            kind: LocatorKind::Streaming,
            name: "clip".into(),
            start: now,
            end: now + ChronoDuration::hours(1),
            filters: vec![],
            created_at: now,
        }
    }

    /// Issue 15 items 2 and 8: every invalidation is asked again once the packager's instances have stopped trusting
    /// their cached locator and asset (before: once, so a CDN miss served from such a cache was cached again).
    #[tokio::test]
    async fn every_invalidation_is_repeated_after_the_packagers_cache_window() {
        use crate::memory::{MemoryAssetStore, MemoryDeliveryStore};
        let store = Arc::new(MemoryDeliveryStore::default());
        let cdn = Arc::new(RecordingCdn::default());
        let after = std::time::Duration::from_secs(40);
        let svc = DeliveryService::new(Arc::new(MemoryAssetStore::default()), store.clone())
            .with_cdn(cdn.clone(), "/stream")
            .with_cdn_recheck(after);
        let l = hour_long_locator(AssetId::new_random());
        store.put_locator(&l).await.expect("the in-memory stores answer");
        svc.delete_locator(l.id).await.expect("the in-memory stores answer");
        let paths = vec![format!("/stream/{}/*", l.id)];
        assert_eq!(*cdn.0.lock().expect("the recording lock"), vec![paths.clone()]);
        assert_eq!(*cdn.1.lock().expect("the recording lock"), vec![(paths, after)]);
    }

    /// Issue 15 item 2: unpublishing and deleting drop the locators' paths from the CDN (before: nothing did, and
    /// a CDN kept serving cached segments for as long as their max-age said).
    #[tokio::test]
    async fn unpublish_and_delete_invalidate_the_cdn() {
        use crate::memory::{MemoryAssetStore, MemoryDeliveryStore};
        let store = Arc::new(MemoryDeliveryStore::default());
        let cdn = Arc::new(RecordingCdn::default());
        let svc = DeliveryService::new(Arc::new(MemoryAssetStore::default()), store.clone())
            .with_cdn(cdn.clone(), "/stream/");
        let asset = AssetId::new_random();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let l = hour_long_locator(asset);
            store.put_locator(&l).await.expect("the in-memory stores answer");
            ids.push(l.id);
        }
        svc.delete_locator(ids[0]).await.expect("the in-memory stores answer");
        assert_eq!(
            cdn.0
                .lock()
                .expect("the recording lock")
                .last()
                .expect("an invalidation was made"),
            &vec![format!("/stream/{}/*", ids[0])]
        );
        let paths = svc.invalidate_asset(asset).await.expect("the in-memory stores answer");
        assert_eq!(paths.len(), 2, "the remaining locators: {paths:?}");
        svc.delete_for_asset(asset).await.expect("the in-memory stores answer");
        let last = cdn
            .0
            .lock()
            .expect("the recording lock")
            .last()
            .expect("an invalidation was made")
            .clone();
        assert!(
            last.contains(&format!("/stream/{}/*", ids[1])) && last.len() == 2,
            "{last:?}"
        );
        let many: Vec<LocatorId> = (0..=MAX_INVALIDATION_PATHS).map(|_| LocatorId::new_random()).collect();
        assert_eq!(
            svc.cdn_paths(&many),
            vec!["/stream/*".to_string()],
            "beyond the wildcard limit"
        );
    }
    use crate::job::JobId;

    fn output() -> AssetOutput {
        let r = |name: &str, bitrate| Rendition {
            name: name.into(),
            width: 640,
            height: 360,
            bitrate,
            peak_bitrate: bitrate,
            codecs: "av01.0.04M.08".into(),
            frame_rate: (25, 1),
            timescale: 12800,
            init: String::new(),
            index: String::new(),
            progressive: String::new(),
            colour: None,
        };
        AssetOutput {
            job_id: JobId::new_random(),
            bucket: "b".into(),
            prefix: "p".into(),
            segment_duration: 4.0,
            segment_count: 3,
            duration_secs: 10.0,
            renditions: vec![r("360p", 500_000), r("720p", 2_000_000)],
            audio: vec![AudioRendition {
                name: "audio".into(),
                codecs: "opus".into(),
                channels: 2,
                sample_rate: 48_000,
                bitrate: 96_000,
                timescale: 48_000,
                init: String::new(),
                index: String::new(),
                language: None,
                label: None,
            }],
            thumbnails: None,
        }
    }

    fn filter(name: &str) -> Filter {
        Filter {
            name: name.into(),
            asset_id: None,
            start: None,
            end: None,
            tracks: vec![],
        }
    }

    #[test]
    fn bitrate_ranges_parse_like_ams() {
        assert_eq!(parse_bitrate_range("0-2427000"), Ok((0, 2_427_000)));
        assert_eq!(parse_bitrate_range("-600000"), Ok((0, 600_000)));
        assert_eq!(parse_bitrate_range("600000-"), Ok((600_000, u64::MAX)));
        assert!(parse_bitrate_range("5-1").is_err());
        assert!(parse_bitrate_range("abc").is_err());
        assert!(parse_bitrate_range("1-x").is_err());
    }

    #[test]
    fn filters_intersect_time_and_select_tracks() {
        let out = output();
        let all = select(&out, &[]).unwrap();
        assert_eq!((all.video.len(), all.audio.len(), all.end), (2, 1, 10.0));
        let mut time = filter("t");
        time.start = Some(2.0);
        time.end = Some(6.0);
        let mut time2 = filter("t2");
        time2.start = Some(3.0);
        let s = select(&out, &[time.clone(), time2]).unwrap();
        assert_eq!((s.start, s.end), (3.0, 6.0));
        let mut low = filter("low");
        low.tracks = vec![
            TrackSelection {
                track_type: TrackType::Video,
                bitrate: Some("0-1000000".into()),
                language: None,
            },
            TrackSelection {
                track_type: TrackType::Audio,
                bitrate: None,
                language: None,
            },
        ];
        let s = select(&out, &[low]).unwrap();
        assert_eq!(
            s.video.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["360p"]
        );
        assert_eq!(s.audio.len(), 1);
        let mut video_only = filter("v");
        video_only.tracks = vec![TrackSelection {
            track_type: TrackType::Video,
            bitrate: None,
            language: None,
        }];
        assert!(select(&out, &[video_only]).expect("video kept").audio.is_empty());
        // By language: the French track ("fr-CA") is kept by "fr", the untagged one is not.
        let mut two = out.clone();
        let mut french = two.audio[0].clone();
        french.name = "audio-2".into();
        french.language = Some("fr-CA".into());
        two.audio.push(french);
        let mut fr = filter("fr");
        fr.tracks = vec![
            TrackSelection {
                track_type: TrackType::Video,
                bitrate: None,
                language: None,
            },
            TrackSelection {
                track_type: TrackType::Audio,
                bitrate: None,
                language: Some("fr".into()),
            },
        ];
        assert!(fr.validate().is_ok());
        let kept = select(&two, &[fr.clone()]).unwrap();
        assert_eq!(
            kept.audio.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            vec!["audio-2"]
        );
        fr.tracks[0].language = Some("fr".into());
        assert!(fr.validate().unwrap_err().contains("of an audio track"));
        fr.tracks[0].language = None;
        fr.tracks[1].language = Some("French".into());
        assert!(fr.validate().unwrap_err().contains("language tag"));
        let mut empty = filter("e");
        empty.start = Some(20.0);
        assert!(select(&out, &[empty]).is_err());
    }

    #[test]
    fn validates_filters_and_names() {
        let mut f = filter("ok-1.x");
        assert!(f.validate().is_ok());
        f.start = Some(5.0);
        f.end = Some(5.0);
        assert!(f.validate().is_err());
        assert!(filter("../x").validate().is_err());
        assert!(filter("").validate().is_err());
        assert_eq!(manifest_name("My clip (1).mp4"), "My-clip--1");
        assert_eq!(manifest_name("..."), "stream");
    }

    #[test]
    fn locator_window() {
        let now = Utc::now();
        let l = Locator {
            id: LocatorId::new_random(),
            asset_id: AssetId::new_random(),
            kind: LocatorKind::Streaming,
            name: "s".into(),
            start: now,
            end: now + ChronoDuration::seconds(10),
            filters: vec![],
            created_at: now,
        };
        assert_eq!(l.window(now), LocatorWindow::Active);
        assert!(matches!(
            l.window(now - ChronoDuration::seconds(1)),
            LocatorWindow::NotYetValid(_)
        ));
        assert!(matches!(
            l.window(now + ChronoDuration::seconds(10)),
            LocatorWindow::Expired(_)
        ));
    }
}
