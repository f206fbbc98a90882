//! Generated finished jobs for tests and benchmarks (feature `testkit`): a job of any length with one AV1
//! rendition and Opus audio whose segment objects, sample tables and track configurations are in a blob store
//! kept in a directory (outside the heap that [`PeakAlloc`] measures, as S3 is) that records every read, and whose
//! tasks are all done — ready to finalize.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use vod_cmaf::{CodecConfig, TrackConfig};
use vod_domain::job::{Job, JobId, JobState, Plan, Preset, RungSpec, SegmentRecord, Task, TaskKind, TaskState};
use vod_domain::memory::{MemoryAssetStore, MemoryJobStore, MemorySearchStore, MemoryTaskQueue};
use vod_domain::{
    Asset, AssetId, AssetState, AssetStore, BlobMeta, BlobRef, BlobStore, CompletedPart, JobStore, NoEvents, StoreError,
};

use crate::task::{SampleEntry, SampleTable};
use crate::WorkerContext;

pub use vod_testkit::{peak_since, start_peak, PeakAlloc};

/// A blob store whose objects are files under a directory (removed when dropped).
pub struct DirBlobStore {
    root: std::path::PathBuf,
}

impl DirBlobStore {
    pub fn new() -> std::io::Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "vod-testkit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root)?;
        Ok(DirBlobStore { root })
    }

    fn path(&self, bucket: &str, key: &str) -> Result<std::path::PathBuf, StoreError> {
        if key.split('/').any(|p| p.is_empty() || p == "..") || bucket.contains('/') {
            return Err(StoreError::Backend(format!("unusable key {key}")));
        }
        Ok(self.root.join(bucket).join(key))
    }

    /// Stores an object.
    pub fn insert(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let path = self.path(bucket, key)?;
        let io = |e: std::io::Error| StoreError::Backend(format!("{key}: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&path, body).map_err(io)
    }
}

impl Drop for DirBlobStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        match std::fs::metadata(self.path(&blob.bucket, &blob.key)?) {
            Ok(m) => Ok(Some(BlobMeta {
                size: m.len(),
                etag: format!("{}-{:?}", m.len(), m.modified().ok()),
                content_type: None,
            })),
            Err(_) => Ok(None),
        }
    }
    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::{Read, Seek};
        let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", blob.key));
        let mut f = std::fs::File::open(self.path(&blob.bucket, &blob.key)?).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let start = offset.min(size);
        let n = len.min(size - start);
        f.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
        let mut out = vec![0u8; n as usize];
        f.read_exact(&mut out).map_err(io)?;
        Ok(out)
    }
    async fn put(&self, blob: &BlobRef, body: Vec<u8>, _ct: &str) -> Result<(), StoreError> {
        self.insert(&blob.bucket, &blob.key, &body)
    }
    async fn put_file(&self, blob: &BlobRef, path: &std::path::Path, _ct: &str) -> Result<(), StoreError> {
        let to = self.path(&blob.bucket, &blob.key)?;
        let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", blob.key));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::copy(path, to).map_err(io)?;
        Ok(())
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError> {
        let _ = std::fs::remove_file(self.path(&blob.bucket, &blob.key)?);
        Ok(())
    }
    async fn delete_prefix(&self, _bucket: &str, _prefix: &str) -> Result<u64, StoreError> {
        Err(StoreError::Backend("not supported by the test store".into()))
    }
    async fn presign_put(&self, _blob: &BlobRef, _e: Duration) -> Result<String, StoreError> {
        Err(StoreError::Backend("not supported by the test store".into()))
    }
    async fn presign_get(&self, _blob: &BlobRef, _e: Duration) -> Result<String, StoreError> {
        Err(StoreError::Backend("not supported by the test store".into()))
    }
    async fn create_multipart(&self, _blob: &BlobRef) -> Result<String, StoreError> {
        static UPLOADS: AtomicUsize = AtomicUsize::new(0);
        Ok(format!("upload-{}", UPLOADS.fetch_add(1, Ordering::Relaxed)))
    }
    async fn presign_part(&self, _b: &BlobRef, _id: &str, _n: i32, _e: Duration) -> Result<String, StoreError> {
        Err(StoreError::Backend("not supported by the test store".into()))
    }
    async fn upload_part(&self, b: &BlobRef, id: &str, n: i32, body: Vec<u8>) -> Result<String, StoreError> {
        self.insert(&b.bucket, &format!("parts/{id}/{n}"), &body)?;
        Ok(format!("etag-{n}"))
    }
    async fn complete_multipart(&self, b: &BlobRef, id: &str, parts: &[CompletedPart]) -> Result<(), StoreError> {
        // Concatenated file to file: the parts never pass through the heap.
        use std::io::Write;
        let to = self.path(&b.bucket, &b.key)?;
        let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", b.key));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut out = std::fs::File::create(&to).map_err(io)?;
        for p in parts {
            let part = self.path(&b.bucket, &format!("parts/{id}/{}", p.part_number))?;
            std::io::copy(&mut std::fs::File::open(&part).map_err(io)?, &mut out).map_err(io)?;
            let _ = std::fs::remove_file(part);
        }
        out.flush().map_err(io)
    }
    async fn list_parts(&self, _b: &BlobRef, _id: &str) -> Result<Vec<vod_domain::StoredPart>, StoreError> {
        Err(StoreError::Backend("not supported by the test store".into()))
    }
}

/// Reads counted by a [`Recording`] store: totals only, so that counting costs no memory per read.
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub reads: AtomicU64,
    pub bytes: AtomicU64,
    /// Bytes read from segment objects (`.m4s`).
    pub media_bytes: AtomicU64,
}

impl ReadCounts {
    /// (reads, bytes, media bytes) since the last call, which resets them.
    pub fn take(&self) -> (u64, u64, u64) {
        (
            self.reads.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
            self.media_bytes.swap(0, Ordering::Relaxed),
        )
    }
}

/// A blob store that counts every read.
pub struct Recording {
    pub inner: DirBlobStore,
    pub reads: ReadCounts,
}

#[async_trait]
impl BlobStore for Recording {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        self.inner.head(blob).await
    }
    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let b = self.inner.read_range(blob, offset, len).await?;
        self.reads.reads.fetch_add(1, Ordering::Relaxed);
        self.reads.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        if blob.key.ends_with(".m4s") {
            self.reads.media_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        Ok(b)
    }
    async fn put(&self, blob: &BlobRef, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
        self.inner.put(blob, body, ct).await
    }
    async fn put_file(&self, blob: &BlobRef, path: &std::path::Path, ct: &str) -> Result<(), StoreError> {
        self.inner.put_file(blob, path, ct).await
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
    async fn upload_part(&self, blob: &BlobRef, id: &str, n: i32, body: Vec<u8>) -> Result<String, StoreError> {
        self.inner.upload_part(blob, id, n, body).await
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
/// Segments per video task.
const SEGMENTS_PER_TASK: u32 = 5;
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
    let blobs = Arc::new(Recording {
        inner: DirBlobStore::new().map_err(|e| StoreError::Backend(e.to_string()))?,
        reads: ReadCounts::default(),
    });
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
                    colour: None,
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
            &serde_json::to_vec(config).map_err(json)?,
        )?;
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
                .insert(BUCKET, &format!("{prefix}/{name}/seg-{n:05}.m4s"), &seg)?;
            blobs.inner.insert(
                BUCKET,
                &format!("{prefix}/{name}/seg-{n:05}.json"),
                &serde_json::to_vec(&table).map_err(json)?,
            )?;
            records.push(SegmentRecord {
                number: n,
                start: u64::from(n * *per_segment * *duration),
                duration: u64::from(*per_segment * *duration),
                size: (SEGMENT_HEAD + payload) as u64,
                key_frame: None,
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
            language: None,
            label: None,
        });
    }
    let now = Utc::now();
    let preset = Preset::builtin()
        .into_iter()
        .find(|p| p.name == "tiny")
        .ok_or_else(|| StoreError::Backend("no built-in tiny preset".into()))?;
    // Video tasks of a few segments each, as the planner cuts them, and one audio task.
    let mut kinds: Vec<TaskKind> = (0..segments.div_ceil(SEGMENTS_PER_TASK))
        .map(|i| TaskKind::Video {
            first_segment: i * SEGMENTS_PER_TASK,
            end_segment: ((i + 1) * SEGMENTS_PER_TASK).min(segments),
        })
        .collect();
    kinds.push(TaskKind::Audio {
        ordinal: 0,
        source: vod_domain::job::AudioSource {
            streams: vec![0],
            channels: 2,
            language: None,
            label: None,
        },
    });
    let task_count = kinds.len() as u32;
    let tasks: Vec<Task> = kinds
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
            encoding: vod_domain::job::VideoEncoding::Av1 { speed: 10 },
        }],
        plan: Plan {
            frame_rate: (FPS, 1),
            total_frames: u64::from(segments * SEGMENT_SECS * FPS),
            segment_duration: f64::from(SEGMENT_SECS),
            segment_count: segments,
            has_audio: true,
            tasks: Vec::new(),
            rotation: 0,
            thumbnails: None,
        },
        state: JobState::Processing,
        created_at: now,
        updated_at: now,
        tasks_total: task_count,
        tasks_done: 0,
        tasks_queued: task_count,
        error: None,
    };
    jobs.create_job(&job, &tasks).await?;
    let (video, audio) = (&outputs[0], &outputs[1]);
    for (i, chunk) in video.segments.chunks(SEGMENTS_PER_TASK as usize).enumerate() {
        let out = vod_domain::job::TrackOutput {
            segments: chunk.to_vec(),
            ..video.clone()
        };
        jobs.finish_task(job_id, i as u32, &[out]).await?;
    }
    jobs.finish_task(job_id, task_count - 1, std::slice::from_ref(audio))
        .await?;
    assets.insert(&Asset::new(asset_id, "long", AssetState::Probed)).await?;
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
        job: Job {
            tasks_done: task_count,
            ..job
        },
        samples,
    })
}

/// Bytes `start..=end` of a progressive file as the packager assembles them (no caches): its description, the
/// pages of runs the range needs, then the runs.
pub async fn progressive_range(
    blobs: &dyn BlobStore,
    bucket: &str,
    description: &str,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, StoreError> {
    use vod_package::progressive::ProgressiveMap;
    let corrupt = |e: String| StoreError::Corrupt(e);
    let desc = blobs
        .read_range(&BlobRef::new(bucket, description), 0, u64::MAX)
        .await?;
    let file: vod_domain::ProgressiveFile = serde_json::from_slice(&desc).map_err(|e| corrupt(e.to_string()))?;
    let head_len = match file.head.is_empty() {
        true => 0,
        false => blobs
            .head(&BlobRef::new(bucket, &file.head))
            .await?
            .map_or(0, |m| m.size),
    };
    let map = ProgressiveMap::new(file, head_len).map_err(corrupt)?;
    let span = map.pages_for(start, end);
    let mut pages = Vec::new();
    for i in span.clone() {
        pages.push(match map.held(i) {
            Some(runs) => runs.to_vec(),
            None => {
                let page = map.page(i).ok_or_else(|| corrupt(format!("no page {i}")))?;
                let bytes = blobs
                    .read_range(&BlobRef::new(bucket, map.pages_key()), page.at, page.len)
                    .await?;
                map.parse_page(i, &bytes).map_err(corrupt)?
            }
        });
    }
    let refs: Vec<&[vod_domain::ProgressiveRun]> = pages.iter().map(Vec::as_slice).collect();
    let mut body = Vec::with_capacity((end.saturating_sub(start) + 1) as usize);
    for p in map.pieces(span.start, &refs, start, end) {
        body.extend(blobs.read_range(&BlobRef::new(bucket, &p.key), p.at, p.len).await?);
    }
    Ok(body)
}

/// The size of a progressive file from its description.
pub async fn progressive_size(blobs: &dyn BlobStore, bucket: &str, description: &str) -> Result<u64, StoreError> {
    let desc = blobs
        .read_range(&BlobRef::new(bucket, description), 0, u64::MAX)
        .await?;
    let file: vod_domain::ProgressiveFile =
        serde_json::from_slice(&desc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(file.size)
}
