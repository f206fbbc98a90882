//! Search and captions use cases: an asset's captions (WebVTT, TTML) and transcript, in-video search of one asset
//! (matches with time offsets and context from its transcript and its sidecar caption tracks) and across assets
//! (candidates from the term index, then matched in their transcripts, so phrases and context work the same way).
//! An asset's terms in the index are those of its speech and of its sidecar tracks together ([`refresh_terms`]).
use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::indexing::{
    normalize_term, query_terms, search, Cue, QueryError, SearchIndex, SearchMatch, Transcript, Word,
};
use crate::model::{Asset, AssetId, BlobRef, CaptionsInfo};
use crate::ports::{AssetStore, BlobStore, SearchStore, TermEntry};
use crate::StoreError;

/// Candidate assets read per term from the term index.
const CANDIDATES: usize = 500;
/// Start times kept per term in the cross-asset index.
pub const TERM_TIMES: usize = 50;
/// Times the terms are rewritten while the asset keeps changing under [`refresh_terms`].
const REFRESH_ROUNDS: usize = 5;

/// A caption format served by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionFormat {
    WebVtt,
    Ttml,
}

impl CaptionFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            CaptionFormat::WebVtt => "text/vtt; charset=utf-8",
            CaptionFormat::Ttml => "application/ttml+xml; charset=utf-8",
        }
    }
}

/// The matches of a query in one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetMatches {
    pub asset_id: AssetId,
    pub name: String,
    pub matches: Vec<SearchMatch>,
}

#[derive(Clone)]
pub struct SearchService {
    assets: Arc<dyn AssetStore>,
    blobs: Arc<dyn BlobStore>,
    terms: Arc<dyn SearchStore>,
}

impl From<QueryError> for DomainError {
    fn from(e: QueryError) -> Self {
        DomainError::Invalid(e.to_string())
    }
}

impl SearchService {
    pub fn new(assets: Arc<dyn AssetStore>, blobs: Arc<dyn BlobStore>, terms: Arc<dyn SearchStore>) -> Self {
        SearchService { assets, blobs, terms }
    }

    async fn indexed(&self, id: AssetId) -> Result<(Asset, CaptionsInfo), DomainError> {
        let asset = self
            .assets
            .get(id)
            .await?
            .ok_or_else(|| DomainError::asset_not_found(id.to_string()))?;
        let captions = asset.captions.clone().ok_or_else(|| DomainError::NotFound {
            kind: "captions of asset",
            id: format!("{id} (run an indexing job first)"),
        })?;
        Ok((asset, captions))
    }

    async fn object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, DomainError> {
        object(self.blobs.as_ref(), bucket, key).await
    }

    /// The asset and its searchable texts (the speech transcript, then each sidecar track's, with its id); not
    /// found when it has neither.
    async fn searchable(&self, id: AssetId) -> Result<(Asset, Vec<(Option<String>, Transcript)>), DomainError> {
        let asset = self
            .assets
            .get(id)
            .await?
            .ok_or_else(|| DomainError::asset_not_found(id.to_string()))?;
        if asset.captions.is_none() && asset.caption_tracks.is_empty() {
            return Err(DomainError::NotFound {
                kind: "captions of asset",
                id: format!("{id} (run an indexing job or add a caption file first)"),
            });
        }
        let texts = transcripts(self.blobs.as_ref(), &asset).await?;
        Ok((asset, texts))
    }

    /// The asset's captions file.
    pub async fn captions(&self, id: AssetId, format: CaptionFormat) -> Result<Vec<u8>, DomainError> {
        let (_, c) = self.indexed(id).await?;
        let key = match format {
            CaptionFormat::WebVtt => &c.vtt,
            CaptionFormat::Ttml => &c.ttml,
        };
        self.object(&c.bucket, key).await
    }

    /// The transcript document (text, words with times and confidence, keywords) as stored.
    pub async fn transcript_document(&self, id: AssetId) -> Result<serde_json::Value, DomainError> {
        let (_, c) = self.indexed(id).await?;
        let body = self.object(&c.bucket, &c.transcript).await?;
        serde_json::from_slice(&body).map_err(|e| DomainError::Store(crate::StoreError::Corrupt(e.to_string())))
    }

    /// Where a word or phrase is said (or captioned) in one asset.
    pub async fn search_asset(&self, id: AssetId, query: &str, limit: usize) -> Result<AssetMatches, DomainError> {
        query_terms(query)?;
        let (asset, texts) = self.searchable(id).await?;
        Ok(AssetMatches {
            asset_id: asset.id,
            name: asset.name,
            matches: search_texts(&texts, query, limit)?,
        })
    }

    /// Assets whose speech or sidecar captions contain every word of the query, each with its matches (assets in
    /// id order).
    pub async fn search_all(
        &self,
        query: &str,
        assets_limit: usize,
        matches_limit: usize,
    ) -> Result<Vec<AssetMatches>, DomainError> {
        let terms = query_terms(query)?;
        let mut candidates: Option<BTreeSet<AssetId>> = None;
        for term in terms.iter().collect::<BTreeSet<_>>() {
            let found: BTreeSet<AssetId> = self
                .terms
                .find_term(term, CANDIDATES)
                .await?
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            candidates = Some(match candidates {
                None => found,
                Some(c) => c.intersection(&found).copied().collect(),
            });
        }
        let mut out = Vec::new();
        for id in candidates.unwrap_or_default() {
            // An asset deleted or re-indexed since its terms were written is skipped.
            let Ok((asset, texts)) = self.searchable(id).await else {
                continue;
            };
            let matches = search_texts(&texts, query, matches_limit)?;
            if !matches.is_empty() {
                out.push(AssetMatches {
                    asset_id: asset.id,
                    name: asset.name,
                    matches,
                });
                if out.len() >= assets_limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The matches of a query in each text (those of a sidecar track name it), in time order, at most `limit`.
fn search_texts(
    texts: &[(Option<String>, Transcript)],
    query: &str,
    limit: usize,
) -> Result<Vec<SearchMatch>, DomainError> {
    let mut all = Vec::new();
    for (track, t) in texts {
        all.extend(search(t, query, limit)?.into_iter().map(|m| SearchMatch {
            track: track.clone(),
            ..m
        }));
    }
    all.sort_by(|a, b| a.start.total_cmp(&b.start));
    all.truncate(limit);
    Ok(all)
}

async fn object(blobs: &dyn BlobStore, bucket: &str, key: &str) -> Result<Vec<u8>, DomainError> {
    blobs
        .get(&BlobRef::new(bucket, key))
        .await?
        .ok_or_else(|| DomainError::Store(StoreError::Corrupt(format!("{key} is missing"))))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DomainError> {
    serde_json::from_slice(body).map_err(|e| DomainError::Store(StoreError::Corrupt(e.to_string())))
}

/// The cues of a caption track (JSON, as stored).
pub async fn read_cues(blobs: &dyn BlobStore, bucket: &str, key: &str) -> Result<Vec<Cue>, DomainError> {
    parse_json(&object(blobs, bucket, key).await?)
}

/// The searchable texts of an asset: its speech transcript (track `None`), then each sidecar track's cues as words.
async fn transcripts(blobs: &dyn BlobStore, asset: &Asset) -> Result<Vec<(Option<String>, Transcript)>, DomainError> {
    let mut out = Vec::new();
    if let Some(c) = &asset.captions {
        out.push((None, parse_json(&object(blobs, &c.bucket, &c.transcript).await?)?));
    }
    for t in &asset.caption_tracks {
        let cues = read_cues(blobs, &t.bucket, &t.cues).await?;
        out.push((Some(t.id.clone()), cue_transcript(&t.language, &cues)));
    }
    Ok(out)
}

/// The words of caption cues as a transcript: each cue's words share its time evenly, in order, confidence 1.
pub fn cue_transcript(language: &str, cues: &[Cue]) -> Transcript {
    let mut words = Vec::new();
    for cue in cues.iter().filter(|c| c.start.is_finite() && c.end.is_finite()) {
        let tokens: Vec<&str> = cue.text.split_whitespace().collect();
        let step = (cue.end - cue.start).max(0.0) / tokens.len().max(1) as f64;
        words.extend(tokens.iter().enumerate().map(|(i, text)| Word {
            text: (*text).to_string(),
            start: cue.start + step * i as f64,
            end: cue.start + step * (i + 1) as f64,
            confidence: 1.0,
        }));
    }
    words.sort_by(|a, b| a.start.total_cmp(&b.start));
    Transcript {
        language: language.to_string(),
        duration: cues.iter().map(|c| c.end).filter(|e| e.is_finite()).fold(0.0, f64::max),
        words,
    }
}

/// The cross-asset index entries of texts taken together: per term, its count and its first start times.
pub fn term_entries(texts: &[&Transcript]) -> Vec<TermEntry> {
    let words: Vec<Word> = texts
        .iter()
        .flat_map(|t| t.words.iter())
        .filter(|w| normalize_term(&w.text).is_some())
        .cloned()
        .collect();
    let index = SearchIndex::build(&Transcript {
        language: String::new(),
        duration: 0.0,
        words,
    });
    index
        .terms
        .iter()
        .map(|(term, occ)| TermEntry {
            term: term.clone(),
            count: u32::try_from(occ.len()).unwrap_or(u32::MAX),
            times: occ.iter().take(TERM_TIMES).map(|o| o.start).collect(),
        })
        .collect()
}

/// Rewrites the asset's terms in the cross-asset index from what its record holds now: the speech transcript and
/// the sidecar tracks together (none once the asset is deleted). Every writer of either calls it after its update;
/// a write made from a record that changed meanwhile is made again from the newer one, so the last write always
/// matches the last record.
pub async fn refresh_terms(
    assets: &dyn AssetStore,
    blobs: &dyn BlobStore,
    terms: &dyn SearchStore,
    id: AssetId,
) -> Result<(), DomainError> {
    let mut seen = None;
    for _ in 0..REFRESH_ROUNDS {
        let asset = assets.get(id).await?;
        let version = asset.as_ref().map(|a| a.version);
        if seen.is_some() && seen == Some(version) {
            return Ok(());
        }
        let entries = match &asset {
            Some(a) => {
                let texts = transcripts(blobs, a).await?;
                term_entries(&texts.iter().map(|(_, t)| t).collect::<Vec<_>>())
            }
            None => Vec::new(),
        };
        terms.put_terms(id, &entries).await?;
        seen = Some(version);
    }
    Ok(())
}
