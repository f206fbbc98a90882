//! Sidecar caption tracks: caption files a producer uploads for an asset (WebVTT, SRT, TTML/DFXP, in any language),
//! stored normalised — the cues as JSON for the packager and a WebVTT file — beside the track generated from the
//! speech, streamed and searched like it. Adding, listing and deleting them; each change rewrites the asset's
//! search terms (speech ∪ sidecars, see [`crate::search::refresh_terms`]).
//!
//! A track can be added to an asset in any state; it is streamed once the asset has an output.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::captions::{self, CaptionError, CaptionFormat};
use crate::error::{DomainError, StoreError};
use crate::indexing::{webvtt, Cue};
use crate::model::{Asset, AssetId, BlobRef};
use crate::ports::{AssetStore, BlobStore, SearchStore};

/// Most sidecar tracks one asset holds.
pub const MAX_TRACKS: usize = 32;
/// Largest caption file accepted through the API (the parser's own bound is larger).
pub const MAX_UPLOAD_BYTES: usize = 2 << 20;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest track id.
const MAX_ID_CHARS: usize = 24;

/// A sidecar caption track of an asset, as its record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionTrack {
    /// Short and URL-safe, unique in the asset (`fr-1`): names the track in API paths and stream URLs.
    pub id: String,
    /// BCP 47 language tag.
    pub language: String,
    /// The name players show.
    pub label: String,
    /// The format the file was uploaded in.
    pub format: CaptionFormat,
    pub bucket: String,
    /// Object keys: the cues (JSON, what the packager and search read) and the normalised WebVTT; unique per upload.
    pub cues: String,
    pub vtt: String,
    pub cue_count: u32,
    pub created_at: DateTime<Utc>,
}

/// A caption file to add to an asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCaptions {
    pub language: String,
    pub label: String,
    /// `vtt`, `srt` or `ttml` (`webvtt`, `dfxp` too); detected from the text when absent.
    #[serde(default)]
    pub format: Option<String>,
    pub text: String,
}

/// Why a caption upload is refused (all map to 400 but [`TooMany`](SidecarError::TooMany), a 409).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SidecarError {
    #[error("{0:?} is not a BCP 47 language tag (e.g. fr, pt-BR, zh-Hant)")]
    Language(String),
    #[error("the label must be 1 to {MAX_LABEL_CHARS} printable characters")]
    Label,
    #[error("format {0:?} is not one of vtt, srt, ttml")]
    Format(String),
    #[error("the caption format cannot be recognised: say format (vtt, srt or ttml)")]
    Undetected,
    #[error("the caption file is larger than {MAX_UPLOAD_BYTES} bytes")]
    TooLarge,
    #[error("the asset has {MAX_TRACKS} caption tracks already: delete one first")]
    TooMany,
    #[error("the {0} file is not valid: {1}")]
    Parse(&'static str, CaptionError),
}

impl From<SidecarError> for DomainError {
    fn from(e: SidecarError) -> Self {
        match e {
            SidecarError::TooMany => DomainError::Conflict(e.to_string()),
            e => DomainError::Invalid(e.to_string()),
        }
    }
}

/// A BCP 47-shaped tag: a 2–8 letter primary subtag, then subtags of 1–8 letters or digits; at most 35
/// characters.
pub fn valid_language(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary_ok = subtags
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    primary_ok
        && tag.len() <= 35
        && subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A track id: 1 to 24 lowercase letters, digits and `-`.
pub fn valid_track_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_label(label: &str) -> bool {
    let n = label.chars().count();
    (1..=MAX_LABEL_CHARS).contains(&n) && !label.chars().any(char::is_control) && !label.trim().is_empty()
}

/// The id of a new track in `language`: its primary subtag and the first number free among `taken`.
pub fn new_track_id<'a>(language: &str, taken: impl Iterator<Item = &'a str> + Clone) -> String {
    let primary: String = language.split('-').next().unwrap_or("und").to_ascii_lowercase();
    let primary = if valid_track_id(&primary) && primary.len() <= 8 {
        primary
    } else {
        "und".into()
    };
    (1..)
        .map(|n| format!("{primary}-{n}"))
        .find(|id| !taken.clone().any(|t| t == id))
        .unwrap_or_default()
}

/// The checked upload: its format and its cues.
pub fn read_upload(req: &AddCaptions) -> Result<(CaptionFormat, Vec<Cue>), SidecarError> {
    if !valid_language(&req.language) {
        return Err(SidecarError::Language(req.language.clone()));
    }
    if !valid_label(&req.label) {
        return Err(SidecarError::Label);
    }
    if req.text.len() > MAX_UPLOAD_BYTES {
        return Err(SidecarError::TooLarge);
    }
    let format = match &req.format {
        Some(f) => CaptionFormat::parse(f).ok_or_else(|| SidecarError::Format(f.clone()))?,
        None => CaptionFormat::sniff(&req.text).ok_or(SidecarError::Undetected)?,
    };
    let name = match format {
        CaptionFormat::Vtt => "WebVTT",
        CaptionFormat::Srt => "SRT",
        CaptionFormat::Ttml => "TTML",
    };
    let cues = captions::parse(req.text.as_bytes(), format).map_err(|e| SidecarError::Parse(name, e))?;
    Ok((format, cues))
}

/// The caption tracks of an asset as the API lists them.
#[derive(Debug, Clone, Serialize)]
pub struct CaptionTracks {
    /// The track generated from the speech (its indexing job), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech: Option<SpeechTrack>,
    pub items: Vec<CaptionTrack>,
}

/// The speech-generated track as listed beside the sidecars.
#[derive(Debug, Clone, Serialize)]
pub struct SpeechTrack {
    pub id: &'static str,
    pub language: String,
    pub words: u32,
}

/// The id the speech track is listed under (and its search matches carry none).
pub const SPEECH_TRACK: &str = "speech";

/// Adding, listing, reading and deleting an asset's sidecar caption tracks.
#[derive(Clone)]
pub struct CaptionService {
    assets: Arc<dyn AssetStore>,
    blobs: Arc<dyn BlobStore>,
    terms: Arc<dyn SearchStore>,
    media_bucket: String,
}

impl CaptionService {
    pub fn new(
        assets: Arc<dyn AssetStore>,
        blobs: Arc<dyn BlobStore>,
        terms: Arc<dyn SearchStore>,
        media_bucket: impl Into<String>,
    ) -> Self {
        CaptionService {
            assets,
            blobs,
            terms,
            media_bucket: media_bucket.into(),
        }
    }

    async fn asset(&self, id: AssetId) -> Result<Asset, DomainError> {
        (self.assets.get(id).await?).ok_or_else(|| DomainError::asset_not_found(id.to_string()))
    }

    /// Reads, checks and stores a caption file as a new track of the asset; its words become searchable.
    pub async fn add(&self, id: AssetId, req: &AddCaptions) -> Result<CaptionTrack, DomainError> {
        let (format, cues) = read_upload(req)?;
        let mut asset = self.asset(id).await?;
        if asset.caption_tracks.len() >= MAX_TRACKS {
            return Err(SidecarError::TooMany.into());
        }
        // Objects first, under a key of their own (a retried or concurrent upload never overwrites one in use).
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let dir = format!("assets/{id}/captions/{}", &upload[..16]);
        let (cues_key, vtt_key) = (format!("{dir}/cues.json"), format!("{dir}/captions.vtt"));
        let body = serde_json::to_vec(&cues).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let bucket = self.media_bucket.clone();
        self.blobs
            .put(&BlobRef::new(&bucket, &cues_key), body, "application/json")
            .await?;
        let vtt = webvtt(&cues).into_bytes();
        self.blobs
            .put(&BlobRef::new(&bucket, &vtt_key), vtt, "text/vtt; charset=utf-8")
            .await?;
        // ISO 639-2 codes as BCP 47 wants them ("fre" is "fr"), like the probe's audio languages.
        let language = vod_media::language_tag(&req.language).unwrap_or_else(|| req.language.clone());
        let track = loop {
            if asset.caption_tracks.len() >= MAX_TRACKS {
                self.delete_objects(&bucket, &[&cues_key, &vtt_key]).await?;
                return Err(SidecarError::TooMany.into());
            }
            let track = CaptionTrack {
                id: new_track_id(&language, asset.caption_tracks.iter().map(|t| t.id.as_str())),
                language: language.clone(),
                label: req.label.trim().to_string(),
                format,
                bucket: bucket.clone(),
                cues: cues_key.clone(),
                vtt: vtt_key.clone(),
                cue_count: u32::try_from(cues.len()).unwrap_or(u32::MAX),
                created_at: Utc::now(),
            };
            asset.caption_tracks.push(track.clone());
            asset.updated_at = Utc::now();
            match self.assets.update(&asset).await {
                Ok(_) => break track,
                Err(StoreError::Conflict(_)) => asset = self.asset(id).await?,
                Err(e) => return Err(e.into()),
            }
        };
        info!(asset_id = %id, track = %track.id, cues = cues.len(), "caption track added");
        crate::search::refresh_terms(self.assets.as_ref(), self.blobs.as_ref(), self.terms.as_ref(), id).await?;
        Ok(track)
    }

    /// The speech track (if the asset was indexed) and the sidecar tracks.
    pub async fn list(&self, id: AssetId) -> Result<CaptionTracks, DomainError> {
        let asset = self.asset(id).await?;
        Ok(CaptionTracks {
            speech: asset.captions.as_ref().map(|c| SpeechTrack {
                id: SPEECH_TRACK,
                language: c.language.clone(),
                words: c.words,
            }),
            items: asset.caption_tracks,
        })
    }

    /// A sidecar track and its cues.
    pub async fn track(&self, id: AssetId, track: &str) -> Result<(CaptionTrack, Vec<Cue>), DomainError> {
        let asset = self.asset(id).await?;
        let t = find(&asset, track)?.clone();
        let cues = crate::search::read_cues(self.blobs.as_ref(), &t.bucket, &t.cues).await?;
        Ok((t, cues))
    }

    /// Removes a sidecar track: the record first, then its objects and search terms. Returns whether it existed
    /// (deleting twice is not an error).
    pub async fn delete(&self, id: AssetId, track: &str) -> Result<bool, DomainError> {
        let mut asset = self.asset(id).await?;
        let removed = loop {
            let Some(at) = asset.caption_tracks.iter().position(|t| t.id == track) else {
                return Ok(false);
            };
            let removed = asset.caption_tracks.remove(at);
            asset.updated_at = Utc::now();
            match self.assets.update(&asset).await {
                Ok(_) => break removed,
                Err(StoreError::Conflict(_)) => asset = self.asset(id).await?,
                Err(e) => return Err(e.into()),
            }
        };
        crate::search::refresh_terms(self.assets.as_ref(), self.blobs.as_ref(), self.terms.as_ref(), id).await?;
        self.delete_objects(&removed.bucket, &[&removed.cues, &removed.vtt])
            .await?;
        info!(asset_id = %id, track, "caption track deleted");
        Ok(true)
    }

    async fn delete_objects(&self, bucket: &str, keys: &[&str]) -> Result<(), DomainError> {
        for key in keys {
            self.blobs.delete(&BlobRef::new(bucket, *key)).await?;
        }
        Ok(())
    }
}

/// The sidecar track `track` of `asset`.
pub fn find<'a>(asset: &'a Asset, track: &str) -> Result<&'a CaptionTrack, DomainError> {
    asset
        .caption_tracks
        .iter()
        .find(|t| t.id == track)
        .ok_or_else(|| DomainError::NotFound {
            kind: "caption track",
            id: format!("{track} of asset {}", asset.id),
        })
}

#[cfg(test)]
mod tests;
