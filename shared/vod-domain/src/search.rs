//! Search and captions use cases: an asset's captions (WebVTT, TTML) and transcript, in-video search of one asset
//! (matches with time offsets and context from its transcript) and across assets (candidates from the term index,
//! then matched in their transcripts, so phrases and context work the same way).
use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::indexing::{query_terms, search, QueryError, SearchMatch, Transcript};
use crate::model::{Asset, AssetId, BlobRef, CaptionsInfo};
use crate::ports::{AssetStore, BlobStore, SearchStore};

/// Candidate assets read per term from the term index.
const CANDIDATES: usize = 500;

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
        self.blobs
            .get(&BlobRef::new(bucket, key))
            .await?
            .ok_or_else(|| DomainError::Store(crate::StoreError::Corrupt(format!("{key} is missing"))))
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

    async fn transcript(&self, c: &CaptionsInfo) -> Result<Transcript, DomainError> {
        let body = self.object(&c.bucket, &c.transcript).await?;
        serde_json::from_slice(&body).map_err(|e| DomainError::Store(crate::StoreError::Corrupt(e.to_string())))
    }

    /// Where a word or phrase is said in one asset.
    pub async fn search_asset(&self, id: AssetId, query: &str, limit: usize) -> Result<AssetMatches, DomainError> {
        query_terms(query)?;
        let (asset, c) = self.indexed(id).await?;
        let t = self.transcript(&c).await?;
        Ok(AssetMatches {
            asset_id: asset.id,
            name: asset.name,
            matches: search(&t, query, limit)?,
        })
    }

    /// Assets whose speech contains every word of the query, each with its matches (assets in id order).
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
            let Ok((asset, c)) = self.indexed(id).await else {
                continue;
            };
            let t = self.transcript(&c).await?;
            let matches = search(&t, query, matches_limit)?;
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
