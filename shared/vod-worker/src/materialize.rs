//! A rendition's progressive MP4 stored whole (`progressive.mp4` beside its description), for clients that
//! download it in one request, which no single packager response can carry: the packager asks for it once
//! (a message on the task queue) and redirects such requests to it when it exists. The file is copied from the
//! head and the segments' runs, in order, into a multipart upload: memory is one part, whatever the title's length.
use futures::{StreamExt, TryStreamExt};
use tracing::info;
use vod_domain::{BlobRef, CompletedPart, ProgressiveFile};
use vod_package::progressive::ProgressiveMap;

use crate::{TaskError, WorkerContext};

/// Bytes of each uploaded part (S3 needs at least 5 MiB but for the last).
pub const PART_SIZE: usize = 8 << 20;
/// Runs read at once.
const READS: usize = 8;

/// Stores the progressive file that `description` (a `progressive.json` in the media bucket) lays out, unless a
/// file of its size is there already.
pub async fn materialize(ctx: &WorkerContext, description: &str) -> Result<(), TaskError> {
    let media = |key: &str| BlobRef::new(&ctx.media_bucket, key);
    let corrupt = |e: String| TaskError::Permanent(format!("progressive file {description}: {e}"));
    let desc = ctx
        .blobs
        .get(&media(description))
        .await?
        .ok_or_else(|| TaskError::Permanent(format!("{description} does not exist")))?;
    let file: ProgressiveFile = serde_json::from_slice(&desc).map_err(|e| corrupt(e.to_string()))?;
    let head_len = match file.head.is_empty() {
        true => 0,
        false => ctx.blobs.head(&media(&file.head)).await?.map_or(0, |m| m.size),
    };
    let map = ProgressiveMap::new(file, head_len).map_err(corrupt)?;
    let target = media(&ProgressiveFile::stored_key(description));
    if ctx.blobs.head(&target).await?.is_some_and(|m| m.size == map.size()) {
        info!(key = %target.key, "progressive file already stored");
        return Ok(());
    }
    let upload_id = ctx.blobs.create_multipart(&target).await?;
    let mut parts = Vec::new();
    let mut part = Vec::with_capacity(PART_SIZE);
    let mut written = 0u64;
    for i in 0..map.pages_for(0, map.size() - 1).end {
        let runs = match map.held(i) {
            Some(runs) => runs.to_vec(),
            None => {
                let page = map.page(i).ok_or_else(|| corrupt(format!("no page {i}")))?;
                let bytes = ctx.blobs.read_range(&media(map.pages_key()), page.at, page.len).await?;
                map.parse_page(i, &bytes).map_err(corrupt)?
            }
        };
        let mut reads = futures::stream::iter(runs.into_iter().map(|r| async move {
            let bytes = ctx.blobs.read_range(&media(&r.key), r.at, r.size).await?;
            if bytes.len() as u64 != r.size {
                return Err(TaskError::Transient(format!("{}: short read", r.key)));
            }
            Ok::<_, TaskError>(bytes)
        }))
        .buffered(READS);
        while let Some(bytes) = reads.try_next().await? {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let take = rest.len().min(PART_SIZE - part.len());
                part.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if part.len() == PART_SIZE {
                    written += part.len() as u64;
                    parts.push(upload(ctx, &target, &upload_id, parts.len(), &mut part).await?);
                }
            }
        }
    }
    if !part.is_empty() || parts.is_empty() {
        written += part.len() as u64;
        parts.push(upload(ctx, &target, &upload_id, parts.len(), &mut part).await?);
    }
    if written != map.size() {
        return Err(corrupt(format!("{written} bytes copied for a file of {}", map.size())));
    }
    ctx.blobs.complete_multipart(&target, &upload_id, &parts).await?;
    info!(key = %target.key, bytes = written, parts = parts.len(), "progressive file stored");
    Ok(())
}

/// Uploads `part` as part number `index + 1` and empties it.
async fn upload(
    ctx: &WorkerContext,
    target: &BlobRef,
    upload_id: &str,
    index: usize,
    part: &mut Vec<u8>,
) -> Result<CompletedPart, TaskError> {
    let part_number = i32::try_from(index + 1).map_err(|_| TaskError::Permanent("too many parts".into()))?;
    // The next part's buffer is made once this one is gone: one part in memory at a time.
    let body = std::mem::take(part);
    let etag = ctx.blobs.upload_part(target, upload_id, part_number, body).await?;
    part.reserve(PART_SIZE);
    Ok(CompletedPart { part_number, etag })
}
