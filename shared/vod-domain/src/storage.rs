//! Storage encryption: an asset chosen for it at creation has a 256-bit data key (given by the uploader, who
//! encrypts the mezzanine before uploading it, as AMS's clients did; stored only KMS-wrapped). Its source and every
//! output object are AES-256-CTR ciphertext, so any byte range decrypts on its own: `EncryptedBlobStore` wraps the
//! blob store of ingest, the encoder and the packager and decrypts exactly the ranges they read, and encrypts what
//! they write. Raw objects in the buckets are not playable media.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use openssl::symm::{Cipher, Crypter, Mode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::model::{AssetId, BlobRef, CompletedPart};
use crate::ports::{AssetStore, BlobMeta, BlobStore};
use crate::protection::KeyService;

/// An asset's storage key as stored: KMS-wrapped only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageKey {
    /// KMS ciphertext (base64) of the 32-byte data key, bound to the asset id.
    pub wrapped: String,
}

/// Bytes encrypted at a time when a file is uploaded.
const SEAL_CHUNK: usize = 1 << 20;

fn context(asset: AssetId) -> Vec<(&'static str, String)> {
    vec![("asset", asset.to_string()), ("purpose", "storage".into())]
}

/// Wraps an uploader's 32-byte data key (base64) with the key service.
pub async fn wrap_storage_key(kms: &dyn KeyService, asset: AssetId, key_b64: &str) -> Result<StorageKey, String> {
    let key = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .map_err(|_| "storage_encryption.key is not base64".to_string())?,
    );
    if key.len() != 32 {
        return Err("storage_encryption.key must be 32 bytes (AES-256)".into());
    }
    let wrapped = kms.wrap(&key, &context(asset)).await.map_err(|e| e.to_string())?;
    Ok(StorageKey {
        wrapped: base64::engine::general_purpose::STANDARD.encode(wrapped),
    })
}

/// AES-256-CTR over `data`, which sits at byte `offset` of the object `object_key`. The counter block is
/// SHA-256(object key)[..8] ‖ (offset / 16) as a big-endian u64, so every object has its own key stream and any
/// range can be processed alone. Encryption and decryption are the same operation.
pub fn ctr_apply(key: &[u8; 32], object_key: &str, offset: u64, data: &mut [u8]) -> Result<(), StoreError> {
    let nonce = Sha256::digest(object_key.as_bytes());
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&nonce[..8]);
    iv[8..].copy_from_slice(&(offset / 16).to_be_bytes());
    let err = |e: openssl::error::ErrorStack| StoreError::Backend(format!("AES-CTR: {e}"));
    let mut c = Crypter::new(Cipher::aes_256_ctr(), Mode::Encrypt, key, Some(&iv)).map_err(err)?;
    let skip = (offset % 16) as usize;
    let mut scratch = vec![0u8; data.len() + skip + 16];
    let mut input = Vec::with_capacity(skip + data.len());
    input.resize(skip, 0);
    input.extend_from_slice(data);
    let n = c.update(&input, &mut scratch).map_err(err)?;
    if n < input.len() {
        return Err(StoreError::Backend("AES-CTR produced too few bytes".into()));
    }
    data.copy_from_slice(&scratch[skip..skip + data.len()]);
    Ok(())
}

/// The asset an object belongs to, from its key (`uploads/{asset}/…` or `assets/{asset}/…`).
fn asset_of(key: &str) -> Option<AssetId> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next()) {
        (Some("uploads" | "assets"), Some(id)) => AssetId::parse(id),
        _ => None,
    }
}

type KeyCache = Mutex<HashMap<AssetId, Option<Arc<Zeroizing<[u8; 32]>>>>>;

/// A blob store that decrypts reads and encrypts writes of storage-encrypted assets (others pass through).
pub struct EncryptedBlobStore {
    inner: Arc<dyn BlobStore>,
    assets: Arc<dyn AssetStore>,
    kms: Arc<dyn KeyService>,
    keys: KeyCache,
}

impl EncryptedBlobStore {
    pub fn new(inner: Arc<dyn BlobStore>, assets: Arc<dyn AssetStore>, kms: Arc<dyn KeyService>) -> Self {
        EncryptedBlobStore {
            inner,
            assets,
            kms,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The data key of the asset owning `key`, if it is storage-encrypted (cached: it never changes).
    async fn key_for(&self, key: &str) -> Result<Option<Arc<Zeroizing<[u8; 32]>>>, StoreError> {
        let Some(asset) = asset_of(key) else {
            return Ok(None);
        };
        if let Some(k) = self
            .keys
            .lock()
            .map_err(|_| StoreError::Backend("key cache poisoned".into()))?
            .get(&asset)
        {
            return Ok(k.clone());
        }
        let found = match self.assets.get(asset).await?.and_then(|a| a.storage_key) {
            None => None,
            Some(sk) => {
                let wrapped = base64::engine::general_purpose::STANDARD
                    .decode(&sk.wrapped)
                    .map_err(|_| StoreError::Corrupt("storage key is not base64".into()))?;
                let plain = self.kms.unwrap(&wrapped, &context(asset)).await?;
                let arr: [u8; 32] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("storage key is not 32 bytes".into()))?;
                Some(Arc::new(Zeroizing::new(arr)))
            }
        };
        // Only a definite answer is cached (an asset not yet recorded may still be created encrypted).
        if found.is_some() || self.assets.get(asset).await?.is_some() {
            self.keys
                .lock()
                .map_err(|_| StoreError::Backend("key cache poisoned".into()))?
                .insert(asset, found.clone());
        }
        Ok(found)
    }

    /// Whether the object belongs to a storage-encrypted asset.
    pub async fn is_encrypted(&self, blob: &BlobRef) -> Result<bool, StoreError> {
        Ok(self.key_for(&blob.key).await?.is_some())
    }
}

#[async_trait]
impl BlobStore for EncryptedBlobStore {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        self.inner.head(blob).await
    }
    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let mut data = self.inner.read_range(blob, offset, len).await?;
        if let Some(k) = self.key_for(&blob.key).await? {
            ctr_apply(&k, &blob.key, offset, &mut data)?;
        }
        Ok(data)
    }
    async fn get(&self, blob: &BlobRef) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(mut data) = self.inner.get(blob).await? else {
            return Ok(None);
        };
        if let Some(k) = self.key_for(&blob.key).await? {
            ctr_apply(&k, &blob.key, 0, &mut data)?;
        }
        Ok(Some(data))
    }
    async fn put(&self, blob: &BlobRef, mut body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        if let Some(k) = self.key_for(&blob.key).await? {
            ctr_apply(&k, &blob.key, 0, &mut body)?;
            return self.inner.put(blob, body, "application/octet-stream").await;
        }
        self.inner.put(blob, body, content_type).await
    }
    async fn put_file(&self, blob: &BlobRef, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
        let Some(k) = self.key_for(&blob.key).await? else {
            return self.inner.put_file(blob, path, content_type).await;
        };
        // Encrypted chunk by chunk into a sibling file, which is then streamed (memory: one chunk).
        let sealed = path.with_extension("sealed");
        let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", path.display()));
        let result = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut input = tokio::fs::File::open(path).await.map_err(io)?;
            let mut output = tokio::fs::File::create(&sealed).await.map_err(io)?;
            let mut chunk = vec![0u8; SEAL_CHUNK];
            let mut offset = 0u64;
            loop {
                let n = input.read(&mut chunk).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                ctr_apply(&k, &blob.key, offset, &mut chunk[..n])?;
                output.write_all(&chunk[..n]).await.map_err(io)?;
                offset += n as u64;
            }
            output.flush().await.map_err(io)?;
            self.inner.put_file(blob, &sealed, "application/octet-stream").await
        }
        .await;
        let _ = tokio::fs::remove_file(&sealed).await;
        result
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError> {
        self.inner.delete(blob).await
    }
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StoreError> {
        self.inner.delete_prefix(bucket, prefix).await
    }
    async fn presign_put(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError> {
        self.inner.presign_put(blob, expires).await
    }
    async fn presign_get(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError> {
        // A presigned URL would hand out ciphertext: encrypted assets are only served through the packager.
        if self.key_for(&blob.key).await?.is_some() {
            return Err(StoreError::Conflict(
                "storage-encrypted objects are only served through the packager".into(),
            ));
        }
        self.inner.presign_get(blob, expires).await
    }
    async fn create_multipart(&self, blob: &BlobRef) -> Result<String, StoreError> {
        self.inner.create_multipart(blob).await
    }
    async fn presign_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        expires: Duration,
    ) -> Result<String, StoreError> {
        self.inner.presign_part(blob, upload_id, part_number, expires).await
    }
    async fn upload_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        // A part's offset in the object is not known here, so it could not be encrypted in place.
        if self.key_for(&blob.key).await?.is_some() {
            return Err(StoreError::Conflict(
                "storage-encrypted objects are not written in parts".into(),
            ));
        }
        self.inner.upload_part(blob, upload_id, part_number, body).await
    }
    async fn complete_multipart(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        self.inner.complete_multipart(blob, upload_id, parts).await
    }
    async fn list_parts(&self, blob: &BlobRef, upload_id: &str) -> Result<Vec<crate::model::StoredPart>, StoreError> {
        self.inner.list_parts(blob, upload_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_decrypts_on_its_own() {
        let key = [7u8; 32];
        let plain: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut enc = plain.clone();
        ctr_apply(&key, "assets/x/seg.m4s", 0, &mut enc).unwrap();
        assert_ne!(enc, plain);
        for (a, z) in [(0usize, 1000usize), (1, 2), (15, 33), (16, 32), (999, 1000), (123, 777)] {
            let mut part = enc[a..z].to_vec();
            ctr_apply(&key, "assets/x/seg.m4s", a as u64, &mut part).unwrap();
            assert_eq!(part, plain[a..z], "range {a}..{z}");
        }
        let mut other = plain.clone();
        ctr_apply(&key, "assets/x/other.m4s", 0, &mut other).unwrap();
        assert_ne!(other, enc, "each object has its own key stream");
        assert_eq!(asset_of("assets/not-a-uuid/x"), None);
        assert_eq!(asset_of("elsewhere/6f1c9a0e-4b6d-4c1e-9d3a-6a0b2f1e7c55/x"), None);
        assert!(asset_of("uploads/6f1c9a0e-4b6d-4c1e-9d3a-6a0b2f1e7c55/clip.mp4").is_some());
    }
}
