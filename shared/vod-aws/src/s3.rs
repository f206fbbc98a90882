//! Object storage on S3: ranged reads, presigned single and multipart uploads, prefix deletion.
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use vod_domain::{BlobMeta, BlobRef, BlobStore, CompletedPart, StoreError};

use crate::sdk_error;

pub struct S3BlobStore {
    client: Client,
}

fn backend(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(sdk_error(&e))
}

impl S3BlobStore {
    /// One PutObject of `body`.
    async fn put_stream(&self, blob: &BlobRef, body: ByteStream, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub fn new(client: Client) -> Self {
        S3BlobStore { client }
    }

    /// Builds the S3 client; path-style addressing when the endpoint is overridden (emulators have no
    /// per-bucket host names).
    pub fn client_from(config: &aws_config::SdkConfig) -> Client {
        let mut b = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        Client::from_conf(b.build())
    }

    fn presigning(expires: Duration) -> Result<PresigningConfig, StoreError> {
        PresigningConfig::expires_in(expires).map_err(|e| StoreError::Backend(e.to_string()))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(BlobMeta {
                size: out.content_length.unwrap_or(0).max(0) as u64,
                etag: out.e_tag.unwrap_or_default().trim_matches('"').to_string(),
                content_type: out.content_type,
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .range(format!("bytes={}-{}", offset, offset + len - 1))
            .send()
            .await
            .map_err(backend)?;
        let body = out.body.collect().await.map_err(backend)?;
        Ok(body.into_bytes().to_vec())
    }

    async fn get(&self, blob: &BlobRef) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.body.collect().await.map_err(backend)?.into_bytes().to_vec())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put(&self, blob: &BlobRef, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.put_stream(blob, ByteStream::from(body), content_type).await
    }

    async fn put_file(&self, blob: &BlobRef, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
        // Streamed from the file (its length known up front), never held in memory.
        let body = ByteStream::read_from()
            .path(path)
            .buffer_size(256 << 10)
            .build()
            .await
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        self.put_stream(blob, body, content_type).await
    }

    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(backend)?;
            let ids: Vec<ObjectIdentifier> = out
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if !ids.is_empty() {
                let n = ids.len() as u64;
                let delete = Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()
                    .map_err(backend)?;
                self.client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(backend)?;
                deleted += n;
            }
            match out.next_continuation_token {
                Some(t) if out.is_truncated.unwrap_or(false) => token = Some(t),
                _ => break,
            }
        }
        Ok(deleted)
    }

    async fn presign_put(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError> {
        let req = self
            .client
            .put_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .presigned(Self::presigning(expires)?)
            .await
            .map_err(backend)?;
        Ok(req.uri().to_string())
    }

    async fn presign_get(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError> {
        let req = self
            .client
            .get_object()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .presigned(Self::presigning(expires)?)
            .await
            .map_err(backend)?;
        Ok(req.uri().to_string())
    }

    async fn create_multipart(&self, blob: &BlobRef) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .send()
            .await
            .map_err(backend)?;
        out.upload_id
            .ok_or_else(|| StoreError::Backend("CreateMultipartUpload returned no upload id".into()))
    }

    async fn presign_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        expires: Duration,
    ) -> Result<String, StoreError> {
        let req = self
            .client
            .upload_part()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .presigned(Self::presigning(expires)?)
            .await
            .map_err(backend)?;
        Ok(req.uri().to_string())
    }

    async fn upload_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(backend)?;
        out.e_tag
            .ok_or_else(|| StoreError::Backend("UploadPart returned no ETag".into()))
    }

    async fn complete_multipart(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(p.part_number)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&blob.bucket)
            .key(&blob.key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_parts(&self, blob: &BlobRef, upload_id: &str) -> Result<Vec<vod_domain::StoredPart>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&blob.bucket)
                .key(&blob.key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(backend)?;
            for p in out.parts() {
                if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
                    parts.push(vod_domain::StoredPart {
                        part_number: n,
                        etag: etag.to_string(),
                        size: p.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }
}
