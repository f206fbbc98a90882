//! The key service on AWS KMS: envelope encryption with a KMS key (GenerateDataKey, Encrypt, Decrypt), the caller's
//! context bound to every ciphertext as the KMS encryption context. Plaintexts are returned in zeroizing buffers.
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::Client;
use vod_domain::protection::KeyService;
use vod_domain::StoreError;
use zeroize::Zeroizing;

use crate::table::backend;

pub struct KmsKeyService {
    client: Client,
    /// Key id, ARN or alias (`alias/…`).
    key_id: String,
}

impl KmsKeyService {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsKeyService {
            client,
            key_id: key_id.into(),
        }
    }
}

fn context(c: &[(&str, String)]) -> Option<std::collections::HashMap<String, String>> {
    Some(c.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

#[async_trait]
impl KeyService for KmsKeyService {
    async fn generate(&self, len: usize, ctx: &[(&str, String)]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), StoreError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .number_of_bytes(len as i32)
            .set_encryption_context(context(ctx))
            .send()
            .await
            .map_err(backend)?;
        let plain = out
            .plaintext
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| StoreError::Backend("KMS returned no plaintext".into()))?;
        let wrapped = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| StoreError::Backend("KMS returned no ciphertext".into()))?;
        if plain.len() != len {
            return Err(StoreError::Backend(format!(
                "KMS returned {} bytes, not {len}",
                plain.len()
            )));
        }
        Ok((plain, wrapped))
    }

    async fn wrap(&self, plaintext: &[u8], ctx: &[(&str, String)]) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(context(ctx))
            .send()
            .await
            .map_err(backend)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| StoreError::Backend("KMS returned no ciphertext".into()))
    }

    async fn unwrap(&self, wrapped: &[u8], ctx: &[(&str, String)]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(context(ctx))
            .send()
            .await
            .map_err(backend)?;
        out.plaintext
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| StoreError::Backend("KMS returned no plaintext".into()))
    }
}
