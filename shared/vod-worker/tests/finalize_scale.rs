//! Finalize and the progressive download cost metadata, not media, and their memory does not grow with the
//! title: finalizing a generated 10-minute and a 120-minute job reads no byte of any segment, and its peak heap —
//! and that of serving a range of the progressive file on a cold packager — is the same for both (the long one
//! within 1.2× of the short one), while the long job has 12× the segments and samples. The blob store keeps its
//! objects in files, outside the measured heap, as S3 does.

use vod_domain::AssetState;
use vod_worker::testkit::{generate, peak_since, progressive_range, progressive_size, start_peak, PeakAlloc, BUCKET};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

struct Measured {
    finalize_heap: usize,
    range_heap: usize,
    media_bytes_read: u64,
    range_bytes_read: u64,
}

/// A range of the progressive file on a cold packager: 1 MiB in the middle.
const RANGE: u64 = 1 << 20;

async fn measure(minutes: u32) -> Measured {
    let g = generate(minutes).await.expect("generated job");
    g.blobs.reads.take();
    let base = start_peak();
    vod_worker::finalize::maybe_finalize(&g.ctx, g.job.id).await.unwrap();
    let finalize_heap = peak_since(base);
    let asset = g.ctx.assets.get(g.job.asset_id).await.unwrap().unwrap();
    assert_eq!(asset.state, AssetState::Ready);
    let (_, metadata_bytes_read, media_bytes_read) = g.blobs.reads.take();

    // A range in the middle of the file, as a cold packager serves it: description, pages of runs, runs.
    let key = &asset.output.as_ref().unwrap().renditions[0].progressive;
    let size = progressive_size(&*g.blobs, BUCKET, key).await.unwrap();
    let start = size / 2;
    g.blobs.reads.take();
    let base = start_peak();
    let body = progressive_range(&*g.blobs, BUCKET, key, start, start + RANGE - 1)
        .await
        .unwrap();
    let range_heap = peak_since(base);
    assert_eq!(body.len() as u64, RANGE);
    assert!(!body.contains(&0xEE), "only sample bytes, never a segment's own boxes");
    let (range_reads, _, range_bytes_read) = g.blobs.reads.take();
    // The whole file is the head and every sample, and its head parses.
    let head = progressive_range(&*g.blobs, BUCKET, key, 0, 63).await.unwrap();
    assert_eq!(&head[4..8], b"ftyp");
    println!(
        "{minutes} min: {} samples, finalize peak heap {:.2} MiB, read {:.1} MiB of metadata and {media_bytes_read} \
         B of media; a cold 1 MiB range: peak heap {:.2} MiB, {range_bytes_read} B of segments read ({} reads)",
        g.samples,
        finalize_heap as f64 / 1048576.0,
        metadata_bytes_read as f64 / 1048576.0,
        range_heap as f64 / 1048576.0,
        range_reads
    );
    Measured {
        finalize_heap,
        range_heap,
        media_bytes_read,
        range_bytes_read,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn finalize_and_progressive_download_use_memory_independent_of_duration() {
    let short = measure(10).await;
    let long = measure(120).await;
    assert_eq!(
        (short.media_bytes_read, long.media_bytes_read),
        (0, 0),
        "finalize never reads media"
    );
    assert_eq!(
        (short.range_bytes_read, long.range_bytes_read),
        (RANGE, RANGE),
        "a range costs its own bytes"
    );
    let finalize = long.finalize_heap as f64 / short.finalize_heap as f64;
    let range = long.range_heap as f64 / short.range_heap as f64;
    println!("peak heap 120 min ÷ 10 min: finalize {finalize:.2}, cold range {range:.2} (segments and samples: 12×)");
    assert!(
        finalize <= 1.2,
        "finalize's memory grows with the title: {finalize:.2}×"
    );
    assert!(
        range <= 1.2,
        "the progressive download's memory grows with the title: {range:.2}×"
    );
}

/// Storing a progressive file whole (for one-request downloads) copies the head and the runs into a multipart
/// upload: the stored file is the file the packager serves by ranges, and memory stays within about one part.
#[tokio::test(flavor = "current_thread")]
async fn a_progressive_file_is_stored_whole_in_memory_of_one_part() {
    use vod_domain::{BlobRef, BlobStore, ProgressiveFile};
    let g = generate(40).await.expect("generated job");
    vod_worker::finalize::maybe_finalize(&g.ctx, g.job.id).await.unwrap();
    let asset = g.ctx.assets.get(g.job.asset_id).await.unwrap().unwrap();
    let key = asset.output.as_ref().unwrap().renditions[0].progressive.clone();
    let size = progressive_size(&*g.blobs, BUCKET, &key).await.unwrap();
    let part = vod_worker::materialize::PART_SIZE as u64;
    assert!(size > 2 * part, "several parts: {size} bytes");
    let base = start_peak();
    vod_worker::materialize::materialize(&g.ctx, &key).await.unwrap();
    let heap = peak_since(base);
    println!(
        "stored {size} bytes in parts of {part}: peak heap {:.1} MiB",
        heap as f64 / 1048576.0
    );
    assert!(
        (heap as u64) < 2 * part,
        "memory of about one part, not the file: {heap} B"
    );
    let stored = g
        .blobs
        .read_range(&BlobRef::new(BUCKET, ProgressiveFile::stored_key(&key)), 0, u64::MAX)
        .await
        .unwrap();
    let served = progressive_range(&*g.blobs, BUCKET, &key, 0, size - 1).await.unwrap();
    assert_eq!(stored.len() as u64, size);
    assert!(stored == served, "the stored file is the served file");
    // Asked again, it is not copied again.
    g.blobs.reads.take();
    vod_worker::materialize::materialize(&g.ctx, &key).await.unwrap();
    let (_, _, media) = g.blobs.reads.take();
    assert_eq!(media, 0, "an already stored file is not copied again");
}
