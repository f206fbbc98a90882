//! Generated finished jobs for tests and benchmarks (feature `testkit`): a job of any length with one AV1
//! rendition and Opus audio whose segment objects, sample tables and track configurations are in an in-memory blob
//! store that records every read, and whose tasks are all done — ready to finalize.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use vod_cmaf::{CodecConfig, TrackConfig};
use vod_domain::job::{Job, JobId, JobState, Plan, Preset, RungSpec, SegmentRecord, Task, TaskKind, TaskState};
use vod_domain::memory::{MemoryAssetStore, MemoryBlobStore, MemoryJobStore, MemorySearchStore, MemoryTaskQueue};
use vod_domain::{
    Asset, AssetId, AssetState, AssetStore, BlobMeta, BlobRef, BlobStore, CompletedPart, JobStore, NoEvents, StoreError,
};

use crate::task::{SampleEntry, SampleTable};
use crate::WorkerContext;

/// A global allocator that counts the heap in use and its peak: declare it in a test or benchmark binary
/// (`#[global_allocator] static A: PeakAlloc = PeakAlloc;`) and measure with [`start_peak`] / [`peak_since`].
pub struct PeakAlloc;
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Starts a peak-heap measurement; returns the baseline to pass to [`peak_since`].
pub fn start_peak() -> usize {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    base
}

/// The peak heap above `base` since [`start_peak`] (with [`PeakAlloc`] as the global allocator).
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// A blob store that records every read (key, bytes).
#[derive(Default)]
pub struct Recording {
    pub inner: MemoryBlobStore,
    /// Every read: object key and bytes returned.
    pub reads: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl BlobStore for Recording {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        self.inner.head(blob).await
    }
    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let b = self.inner.read_range(blob, offset, len).await?;
        self.reads
            .lock()
            .map_err(|_| StoreError::Backend("read log poisoned".into()))?
            .push((blob.key.clone(), b.len() as u64));
        Ok(b)
    }
    async fn put(&self, blob: &BlobRef, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
        self.inner.put(blob, body, ct).await
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError> {
        self.inner.delete(blob).await
    }
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StoreError> {
        self.inner.delete_prefix(bucket, prefix).await
    }
    async fn presign_put(&self, blob: &BlobRef, e: Duration) -> Result<String, StoreError> {
        self.inner.presign_put(blob, e).await
    }
    async fn presign_get(&self, blob: &BlobRef, e: Duration) -> Result<String, StoreError> {
        self.inner.presign_get(blob, e).await
    }
    async fn create_multipart(&self, blob: &BlobRef) -> Result<String, StoreError> {
        self.inner.create_multipart(blob).await
    }
    async fn presign_part(&self, blob: &BlobRef, id: &str, n: i32, e: Duration) -> Result<String, StoreError> {
        self.inner.presign_part(blob, id, n, e).await
    }
    async fn complete_multipart(&self, blob: &BlobRef, id: &str, parts: &[CompletedPart]) -> Result<(), StoreError> {
        self.inner.complete_multipart(blob, id, parts).await
    }
    async fn list_parts(&self, blob: &BlobRef, id: &str) -> Result<Vec<vod_domain::StoredPart>, StoreError> {
        self.inner.list_parts(blob, id).await
    }
}

pub const BUCKET: &str = "media";
const FPS: u32 = 25;
const SEGMENT_SECS: u32 = 2;
/// Bytes of a segment before its samples (the moof and mdat header stand-in).
pub const SEGMENT_HEAD: usize = 200;

pub struct Generated {
    pub ctx: WorkerContext,
    pub blobs: Arc<Recording>,
    pub job: Job,
    /// Samples of all tracks.
    pub samples: usize,
}

/// A finished job of `minutes` with one 180p rendition (25 fps, 300 B frames) and Opus audio (20 ms, 40 B
/// packets) in 2 s segments, every task done: segment objects, sample tables and track configurations stored.
pub async fn generate(minutes: u32) -> Result<Generated, StoreError> {
    let json = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let blobs = Arc::new(Recording::default());
    let assets = Arc::new(MemoryAssetStore::default());
    let jobs = Arc::new(MemoryJobStore::default());
    let asset_id = AssetId::new_random();
    let job_id = JobId::new_random();
    let segments = minutes * 60 / SEGMENT_SECS;
    let prefix = format!("assets/{asset_id}/jobs/{job_id}");
    let tracks = [
        (
            "180p",
            TrackConfig {
                track_id: 1,
                timescale: FPS * 1000,
                codec: CodecConfig::Av1 {
                    width: 320,
                    height: 180,
                    av1c: vec![0x81, 0x08, 0x0c, 0x00],
                },
                language: "und".into(),
            },
            FPS * SEGMENT_SECS,
            1000u32,
            300u32,
        ),
        (
            "audio",
            TrackConfig {
                track_id: 1,
                timescale: 48_000,
                codec: CodecConfig::Opus {
                    channels: 2,
                    pre_skip: 312,
                    input_sample_rate: 48_000,
                },
                language: "und".into(),
            },
            50 * SEGMENT_SECS,
            960,
            40,
        ),
    ];
    let mut outputs = Vec::new();
    let mut samples = 0usize;
    for (name, config, per_segment, duration, size) in &tracks {
        blobs.inner.insert(
            BUCKET,
            &format!("{prefix}/{name}/track.json"),
            serde_json::to_vec(config).map_err(json)?,
        );
        let mut records = Vec::new();
        for n in 0..segments {
            let table = SampleTable {
                timescale: config.timescale,
                samples: (0..*per_segment)
                    .map(|i| SampleEntry {
                        size: *size,
                        duration: *duration,
                        sync: i == 0 || *name == "audio",
                        cto: 0,
                    })
                    .collect(),
            };
            samples += *per_segment as usize;
            let payload = (*per_segment * *size) as usize;
            let mut seg = vec![0xEEu8; SEGMENT_HEAD];
            // Each sample's bytes name it: segment number and index (to check the assembled file).
            for i in 0..*per_segment {
                let mut s = vec![(n % 200) as u8; *size as usize];
                s[0] = (i % 256) as u8;
                seg.extend_from_slice(&s);
            }
            blobs
                .inner
                .insert(BUCKET, &format!("{prefix}/{name}/seg-{n:05}.m4s"), seg);
            blobs.inner.insert(
                BUCKET,
                &format!("{prefix}/{name}/seg-{n:05}.json"),
                serde_json::to_vec(&table).map_err(json)?,
            );
            records.push(SegmentRecord {
                number: n,
                start: u64::from(n * *per_segment * *duration),
                duration: u64::from(*per_segment * *duration),
                size: (SEGMENT_HEAD + payload) as u64,
            });
        }
        outputs.push(vod_domain::job::TrackOutput {
            track: name.to_string(),
            codecs: if *name == "audio" {
                "opus".into()
            } else {
                "av01.0.00M.08".into()
            },
            timescale: config.timescale,
            segments: records,
        });
    }
    let now = Utc::now();
    let preset = Preset::builtin()
        .into_iter()
        .find(|p| p.name == "tiny")
        .ok_or_else(|| StoreError::Backend("no built-in tiny preset".into()))?;
    let tasks: Vec<Task> = [
        TaskKind::Video {
            first_segment: 0,
            end_segment: segments,
        },
        TaskKind::Audio,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, kind)| Task {
        job_id,
        index: i as u32,
        kind,
        state: TaskState::Queued,
        attempts: 0,
        error: None,
        outputs: Vec::new(),
        updated_at: now,
    })
    .collect();
    let job = Job {
        id: job_id,
        asset_id,
        preset,
        rungs: vec![RungSpec {
            name: "180p".into(),
            width: 320,
            height: 180,
            bitrate_kbps: 300,
            speed: 10,
        }],
        plan: Plan {
            frame_rate: (FPS, 1),
            total_frames: u64::from(segments * SEGMENT_SECS * FPS),
            segment_duration: f64::from(SEGMENT_SECS),
            segment_count: segments,
            has_audio: true,
            tasks: Vec::new(),
            rotation: 0,
        },
        state: JobState::Processing,
        created_at: now,
        updated_at: now,
        tasks_total: 2,
        tasks_done: 0,
        tasks_queued: 2,
        error: None,
    };
    jobs.create_job(&job, &tasks).await?;
    jobs.finish_task(job_id, 0, &outputs[..1]).await?;
    jobs.finish_task(job_id, 1, &outputs[1..]).await?;
    assets
        .insert(&Asset {
            id: asset_id,
            name: "long".into(),
            state: AssetState::Probed,
            created_at: now,
            updated_at: now,
            upload_key: None,
            source: None,
            media: None,
            error: None,
            output: None,
            delivery_policies: Vec::new(),
            storage_key: None,
            captions: None,
            version: 0,
        })
        .await?;
    let ctx = WorkerContext {
        assets,
        jobs,
        blobs: blobs.clone(),
        media_bucket: BUCKET.into(),
        scratch: std::env::temp_dir(),
        scratch_budget: 1 << 30,
        max_receive_count: 3,
        dead_letter_arn: None,
        threads: 1,
        events: Arc::new(NoEvents),
        queue: Arc::new(MemoryTaskQueue::default()),
        search: Arc::new(MemorySearchStore::default()),
        speech: vod_speech::SpeechConfig::from_lookup(|_: &str| None),
        speech_engine: Default::default(),
    };
    Ok(Generated {
        ctx,
        blobs,
        job: Job { tasks_done: 2, ..job },
        samples,
    })
}
