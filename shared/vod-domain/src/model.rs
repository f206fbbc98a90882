//! Domain types: Asset, AssetFile, their states and the upload instructions handed to producers.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vod_media::MediaInfo;

/// Identifier of an asset: a UUID, random for API-created assets, derived from the object for direct uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AssetId(pub Uuid);

impl AssetId {
    pub fn new_random() -> Self {
        AssetId(Uuid::new_v4())
    }
    /// Deterministic id for an object uploaded straight into the bucket, so that a repeated notification of the
    /// same object version maps to the same asset.
    pub fn for_object(bucket: &str, key: &str, etag: &str) -> Self {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a0e_4b6d_4c1e_9d3a_6a0b_2f1e_7c55);
        let name = format!("s3://{bucket}/{key}#{etag}");
        AssetId(Uuid::new_v5(&NAMESPACE, name.as_bytes()))
    }
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(AssetId)
    }
}

impl std::fmt::Display for AssetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Lifecycle of an asset's source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssetState {
    /// Created through the API; waiting for its upload.
    Created,
    /// The source object arrived and is being probed.
    Uploaded,
    /// The source was probed and is usable.
    Probed,
    /// Encoded: `Asset::output` lists its renditions.
    Ready,
    /// The source cannot be used; `Asset::error` says why.
    Error,
}

impl AssetState {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetState::Created => "Created",
            AssetState::Uploaded => "Uploaded",
            AssetState::Probed => "Probed",
            AssetState::Ready => "Ready",
            AssetState::Error => "Error",
        }
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    pub bucket: String,
    pub key: String,
}

impl BlobRef {
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        BlobRef {
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

/// A file of an asset (for now: its mezzanine source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetFile {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub uploaded_at: DateTime<Utc>,
}

/// An asset: one piece of content, its source file and what the platform learnt about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub name: String,
    pub state: AssetState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Key in the upload bucket that the producer is expected to upload to (API-created assets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AssetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The adaptive-bitrate set of the last finished encoding job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AssetOutput>,
    /// Storage encryption: the asset's data key, KMS-wrapped (its objects are AES-256-CTR ciphertext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<crate::storage::StorageKey>,
    /// How each protocol is delivered (empty: everything clear).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_policies: Vec<crate::protection::DeliveryPolicy>,
    /// Captions and search data of the last finished indexing job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<CaptionsInfo>,
    /// Caption files the producer added (sidecar tracks), in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caption_tracks: Vec<crate::sidecar::CaptionTrack>,
    /// Optimistic-concurrency version: every stored update increments it.
    #[serde(default)]
    pub version: u64,
}

impl Asset {
    /// A new asset record in `state`, created now, with nothing yet known about its media.
    pub fn new(id: AssetId, name: impl Into<String>, state: AssetState) -> Self {
        let now = chrono::Utc::now();
        Asset {
            id,
            name: name.into(),
            state,
            created_at: now,
            updated_at: now,
            upload_key: None,
            source: None,
            media: None,
            error: None,
            output: None,
            storage_key: None,
            delivery_policies: Vec::new(),
            captions: None,
            caption_tracks: Vec::new(),
            version: 0,
        }
    }
}

/// What an indexing job produced: captions, transcript and search data (objects in the media bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionsInfo {
    pub job_id: crate::job::JobId,
    /// BCP 47 language of the speech (e.g. `en-US`).
    pub language: String,
    pub bucket: String,
    /// Object keys: WebVTT, TTML, caption cues (JSON, for the packager), transcript with word times (JSON).
    pub vtt: String,
    pub ttml: String,
    pub cues: String,
    pub transcript: String,
    pub words: u32,
    /// The most frequent content words.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// A page of results and the cursor of the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One part of a multipart upload as the producer completed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    pub part_number: i32,
    pub etag: String,
}

/// A part of a multipart upload already stored (to resume the upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPart {
    pub part_number: i32,
    pub etag: String,
    pub size: u64,
}

/// A page of part URLs of a multipart upload, with the parts already stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadParts {
    pub upload_id: String,
    pub part_size: u64,
    pub part_count: u64,
    pub parts: Vec<PartUrl>,
    pub uploaded: Vec<StoredPart>,
    pub expires_at: DateTime<Utc>,
}

/// How the producer uploads the source file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UploadInstructions {
    /// One presigned PUT.
    Single {
        method: String,
        url: String,
        expires_at: DateTime<Utc>,
    },
    /// Presigned PUT per part, then `POST /assets/{id}/upload/complete` with the parts' ETags. `parts` holds the
    /// first page of URLs; `parts_path` gives any page (and the parts already stored, to resume).
    Multipart {
        upload_id: String,
        part_size: u64,
        part_count: u64,
        parts: Vec<PartUrl>,
        parts_path: String,
        complete_path: String,
        expires_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartUrl {
    pub part_number: i32,
    pub url: String,
}

/// Result of creating an asset through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedAsset {
    pub asset: Asset,
    pub upload: UploadInstructions,
}

/// One video rendition of an encoded asset (CMAF: init segment + numbered media segments + segment index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Average and peak (largest segment) bits per second.
    pub bitrate: u64,
    pub peak_bitrate: u64,
    /// RFC 6381 codec string, e.g. `av01.0.08M.08`.
    pub codecs: String,
    pub frame_rate: (u32, u32),
    pub timescale: u32,
    /// Object keys (media bucket) of the init segment, the segment index (JSON) and the progressive MP4.
    pub init: String,
    pub index: String,
    pub progressive: String,
    /// Its colour description where it signals one (10-bit renditions of deeper sources: e.g. BT.2020 PQ for
    /// HDR10); absent: BT.709 SDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<vod_media::ColourDescription>,
}

/// An audio rendition (Opus or AAC in CMAF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioRendition {
    /// Its track name (`audio` for Opus, `audio-aac`), as in stream URLs; outputs stored before AAC had one
    /// unnamed Opus track.
    #[serde(default = "opus_track_name")]
    pub name: String,
    pub codecs: String,
    pub channels: u8,
    pub sample_rate: u32,
    pub bitrate: u64,
    pub timescale: u32,
    pub init: String,
    pub index: String,
    /// The source track's language (as the container tagged it) and name, where it had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// What an encoding job produced for an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetOutput {
    pub job_id: crate::job::JobId,
    pub bucket: String,
    pub prefix: String,
    pub segment_duration: f64,
    pub segment_count: u32,
    pub duration_secs: f64,
    pub renditions: Vec<Rendition>,
    /// The audio renditions, one per audio codec (none for a silent source). Outputs stored before AAC held one
    /// Opus rendition (an object, or null): they read as a list of it.
    #[serde(
        default,
        deserialize_with = "audio_renditions",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audio: Vec<AudioRendition>,
    /// Thumbnail sprite sheets and the poster, when the preset made them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<Thumbnails>,
}

/// The thumbnails of an encoded asset: as planned (`count` tiles of `width × height`, one every `interval_secs`
/// from 0, laid out row by row `columns × rows` to a JPEG sheet), where the sheets are (`sheet_key`), and the poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnails {
    #[serde(flatten)]
    pub layout: crate::job::ThumbnailPlan,
    /// Object key of sheet `k` is `{sheets}sheet-{k:05}.jpg` (media bucket).
    pub sheets: String,
    /// Object key of the poster (JPEG, `poster_width × poster_height`).
    pub poster: String,
}

impl Thumbnails {
    /// Sheets in all.
    pub fn sheet_count(&self) -> u32 {
        self.layout.sheets()
    }
    /// The file name of sheet `k` (beside the WebVTT index in stream URLs, after `sheets` in the bucket).
    pub fn sheet_name(k: u32) -> String {
        format!("sheet-{k:05}.jpg")
    }
    /// Object key of sheet `k`.
    pub fn sheet_key(&self, k: u32) -> String {
        format!("{}{}", self.sheets, Self::sheet_name(k))
    }
    /// Tile `i`: its sheet and its top-left corner there.
    pub fn tile(&self, i: u32) -> (u32, u32, u32) {
        let l = &self.layout;
        let per = (l.columns * l.rows).max(1);
        let (sheet, at) = (i / per, i % per);
        (
            sheet,
            (at % l.columns.max(1)) * l.width,
            (at / l.columns.max(1)) * l.height,
        )
    }
}

fn opus_track_name() -> String {
    "audio".into()
}

fn audio_renditions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AudioRendition>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Many(Vec<AudioRendition>),
        One(Option<AudioRendition>),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Many(all) => all,
        Stored::One(one) => one.into_iter().collect(),
    })
}

impl AssetOutput {
    /// The audio rendition of a track name.
    pub fn audio_track(&self, name: &str) -> Option<&AudioRendition> {
        self.audio.iter().find(|a| a.name == name)
    }
}

/// One media segment of a track, as listed in the track's segment index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedSegment {
    pub number: u32,
    /// Object key (media bucket).
    pub key: String,
    /// Start time and duration in the track's timescale.
    pub start: u64,
    pub duration: u64,
    pub size: u64,
    /// Video: where its key frame lies in the object (indexes written before I-frame playlists have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame: Option<crate::job::KeyFrame>,
}

/// A track's segment index (`index.json` beside its segments), written by the finalizer, read by the packager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentIndex {
    pub track: String,
    pub codecs: String,
    pub timescale: u32,
    pub init: String,
    pub segments: Vec<IndexedSegment>,
}

/// A rendition's progressive MP4 (`progressive.json` beside its segments), written by the finalizer, served by the
/// packager: the file is a sequence of runs, each a contiguous byte range of a stored object — first its head
/// (`ftyp`, `moov`, `mdat` header), then the samples of each segment. No media is copied to make it.
///
/// The runs are stored in pages (`pages`: JSON arrays of [`ProgressiveRun`] in one object, each found by its byte
/// range), so that serving a range reads one or two pages, whatever the title's length. Descriptions written by
/// the first version held a separate `head` object and every run inline (`runs`); they are still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressiveFile {
    /// The file's size in bytes.
    pub size: u64,
    /// Object key of the head (first version only: now the head is the first run).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub head: String,
    /// Every run inline (first version only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<ProgressiveRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<RunPages>,
}

impl ProgressiveFile {
    /// The key of the file stored whole (for one-request downloads; written on demand), from its description's.
    pub fn stored_key(description: &str) -> String {
        match description.strip_suffix(".json") {
            Some(stem) => format!("{stem}.mp4"),
            None => format!("{description}.mp4"),
        }
    }
}

/// The runs of a progressive file, in pages stored back to back in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPages {
    /// The object holding the pages.
    pub key: String,
    pub pages: Vec<RunPage>,
}

/// One page of runs: where it sits in the pages' object and where its first run starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPage {
    /// File offset of the page's first run.
    pub offset: u64,
    /// Bytes `at..at + len` of the pages' object.
    pub at: u64,
    pub len: u64,
}

/// One run of a progressive file: `size` bytes at `at` in the object `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressiveRun {
    pub key: String,
    pub at: u64,
    pub size: u64,
}
