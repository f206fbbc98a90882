//! Finalize and the progressive download cost metadata, not media: finalizing a generated 10-minute and a
//! 120-minute job reads no byte of any segment, its peak heap stays within the jobs' sample tables, and a
//! progressive-download range reads exactly its own bytes, whatever the title's length.

use vod_domain::{AssetState, BlobRef, BlobStore, ProgressiveFile};
use vod_package::progressive::{Piece, ProgressiveMap};
use vod_worker::testkit::{generate, peak_since, start_peak, PeakAlloc, BUCKET};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

struct Measured {
    peak_heap: usize,
    media_bytes_read: u64,
    metadata_bytes_read: u64,
    range_bytes_read: u64,
}

async fn measure(minutes: u32) -> Measured {
    let g = generate(minutes).await.expect("generated job");
    g.blobs.reads.lock().unwrap().clear();
    let base = start_peak();
    vod_worker::finalize::maybe_finalize(&g.ctx, g.job.id).await.unwrap();
    let peak_heap = peak_since(base);
    let asset = g.ctx.assets.get(g.job.asset_id).await.unwrap().unwrap();
    assert_eq!(asset.state, AssetState::Ready);
    let reads = std::mem::take(&mut *g.blobs.reads.lock().unwrap());
    let media_bytes_read = reads.iter().filter(|(k, _)| k.ends_with(".m4s")).map(|r| r.1).sum();
    let metadata_bytes_read = reads.iter().map(|r| r.1).sum();

    // A progressive-download range in the middle of the file: head and runs mapped onto the segments.
    let key = &asset.output.as_ref().unwrap().renditions[0].progressive;
    let file: ProgressiveFile = serde_json::from_slice(
        &g.blobs
            .inner
            .read_range(&BlobRef::new(BUCKET, key), 0, u64::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let head = g
        .blobs
        .inner
        .read_range(&BlobRef::new(BUCKET, &file.head), 0, u64::MAX)
        .await
        .unwrap();
    let map = ProgressiveMap::new(file, head.len() as u64).unwrap();
    let (start, len) = (map.size() / 2, 1 << 20);
    let mut body = Vec::new();
    for p in map.pieces(start, start + len - 1) {
        match p {
            Piece::Head { start, end } => body.extend_from_slice(&head[start..end]),
            Piece::Object { key, at, len } => {
                body.extend(g.blobs.read_range(&BlobRef::new(BUCKET, key), at, len).await.unwrap())
            }
        }
    }
    assert_eq!(body.len() as u64, len);
    assert!(!body.contains(&0xEE), "only sample bytes, never a segment's own boxes");
    let range_bytes_read = g.blobs.reads.lock().unwrap().iter().map(|r| r.1).sum();
    println!(
        "{minutes} min: {} samples, finalize peak heap {:.1} MiB ({:.1} B/sample), read {:.1} MiB of metadata and {} \
         B of media; a 1 MiB range read {range_bytes_read} B",
        g.samples,
        peak_heap as f64 / 1048576.0,
        peak_heap as f64 / g.samples as f64,
        metadata_bytes_read as f64 / 1048576.0,
        media_bytes_read
    );
    assert!(
        peak_heap < 200 * g.samples + (4 << 20),
        "finalize's heap follows the sample tables ({peak_heap} B for {} samples)",
        g.samples
    );
    Measured {
        peak_heap,
        media_bytes_read,
        metadata_bytes_read,
        range_bytes_read,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn finalize_and_progressive_download_cost_metadata_not_media() {
    let short = measure(10).await;
    let long = measure(120).await;
    assert_eq!(
        (short.media_bytes_read, long.media_bytes_read),
        (0, 0),
        "finalize never reads media"
    );
    assert_eq!(short.range_bytes_read, 1 << 20);
    assert_eq!(
        long.range_bytes_read,
        1 << 20,
        "a range costs its own bytes, whatever the title's length"
    );
    // Media of the long job: 3000 × (50 × 300 + 100 × 40) B ≈ 54 MiB; finalize holds a small fraction of it.
    assert!(long.peak_heap < 54 << 20, "{} B", long.peak_heap);
    assert!(long.metadata_bytes_read < 54 << 20);
    let ratio = long.peak_heap as f64 / short.peak_heap as f64;
    println!("peak heap 120 min ÷ 10 min: {ratio:.2} (sample tables: 12×)");
}
