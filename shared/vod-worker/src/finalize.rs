//! Finalizing a job once all its tasks finished: per track a segment index (number → object, byte size,
//! start, duration), per rendition the layout of its progressive MP4 (video + audio) over the stored segments, the
//! asset's rendition list with RFC 6381 codec strings, asset Ready; for indexing, the captions and search data (see
//! `index`); job Finished. It reads metadata only — task records, track configurations and the segments' sample
//! tables, `FINALIZE_READS` at a time — never a segment's media bytes, so its memory and time grow with the sample
//! count, not with the bitrate. Every write is deterministic, so running it twice is harmless; the job's transition
//! to Finished happens once (conditional update).
use std::collections::BTreeMap;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use tracing::info;
use vod_cmaf::sample::SampleRow;
use vod_cmaf::{progressive_layout, CodecConfig, StoredTrack, TrackConfig};
use vod_domain::job::{Job, JobId, JobState, SegmentRecord, Task, TaskState, TrackOutput};
use vod_domain::{
    AssetOutput, AssetState, AudioRendition, BlobRef, IndexedSegment, ProgressiveFile, ProgressiveRun, Rendition,
    SegmentIndex, StoreError,
};

use crate::task::{init_key, job_prefix, segment_key, table_key, track_key, SampleTable, TaskError};
use crate::WorkerContext;

pub fn index_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/index.json", job_prefix(job))
}
/// The progressive file's description (`ProgressiveFile`) and its head.
pub fn progressive_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.json", job_prefix(job))
}
pub fn progressive_head_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.head", job_prefix(job))
}

/// Sample tables read at once by the finalizer.
const FINALIZE_READS: usize = 16;

/// Finalizes the job if every task finished and it is not finished yet.
pub async fn maybe_finalize(ctx: &WorkerContext, id: JobId) -> Result<(), TaskError> {
    let Some(job) = ctx.jobs.get_job(id).await? else {
        return Ok(());
    };
    if job.state.is_final() || job.tasks_done < job.tasks_total {
        return Ok(());
    }
    let tasks = ctx.jobs.get_tasks(id).await?;
    if tasks.iter().any(|t| t.state != TaskState::Finished) {
        return Ok(());
    }
    let output = match job.preset.encode {
        true => Some(finalize_encoding(ctx, &job, &tasks).await?),
        false => None,
    };
    let captions = match &job.preset.index {
        Some(spec) => Some(crate::index::finalize_index(ctx, &job, &tasks, spec).await?),
        None => None,
    };
    // Record the outputs on the asset (optimistic concurrency, retried on conflict).
    loop {
        let Some(mut asset) = ctx.assets.get(job.asset_id).await? else {
            return Err(TaskError::Permanent("the asset was deleted".into()));
        };
        if let Some(o) = &output {
            // The asset shows this job's output only if no newer job's output is current (two jobs started on
            // the same probed asset may finish in any order); the update is conditional on the asset's version.
            let newer = match asset.output.as_ref().filter(|cur| cur.job_id != job.id) {
                Some(cur) => ctx
                    .jobs
                    .get_job(cur.job_id)
                    .await?
                    .is_some_and(|j| j.created_at > job.created_at),
                None => false,
            };
            if newer {
                info!(job_id = %job.id, "a newer job's output is current; this job's output is not shown");
            } else {
                asset.output = Some(o.clone());
                asset.state = AssetState::Ready;
            }
        }
        if let Some(c) = &captions {
            asset.captions = Some(c.clone());
        }
        asset.updated_at = Utc::now();
        match ctx.assets.update(&asset).await {
            Ok(_) => break,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if ctx
        .jobs
        .transition_job(
            job.id,
            &[JobState::Processing, JobState::Scheduled],
            JobState::Finished,
            None,
        )
        .await?
    {
        info!(job_id = %job.id, progress = 100, "job finished");
        ctx.announce(job.id).await;
    }
    Ok(())
}

/// The encoding part: segment indexes, progressive files and the rendition list.
async fn finalize_encoding(ctx: &WorkerContext, job: &Job, tasks: &[Task]) -> Result<AssetOutput, TaskError> {
    let mut tracks: BTreeMap<String, (String, u32, Vec<SegmentRecord>)> = BTreeMap::new();
    for t in tasks {
        for TrackOutput {
            track,
            codecs,
            timescale,
            segments,
        } in &t.outputs
        {
            let e = tracks
                .entry(track.clone())
                .or_insert_with(|| (codecs.clone(), *timescale, Vec::new()));
            e.2.extend(segments.iter().cloned());
        }
    }
    for (name, (_, _, segs)) in tracks.iter_mut() {
        segs.sort_by_key(|s| s.number);
        segs.dedup_by_key(|s| s.number);
        let want = job.plan.segment_count as usize;
        let complete = segs.len() == want && segs.iter().enumerate().all(|(i, s)| s.number as usize == i);
        if name != "audio" && !complete {
            return Err(TaskError::Permanent(format!(
                "track {name} has {} of {want} segments",
                segs.len()
            )));
        }
    }
    let media = |key: String| BlobRef::new(&ctx.media_bucket, key);
    for (name, (codecs, timescale, segs)) in &tracks {
        let index = SegmentIndex {
            track: name.clone(),
            codecs: codecs.clone(),
            timescale: *timescale,
            init: init_key(job, name),
            segments: segs
                .iter()
                .map(|s| IndexedSegment {
                    number: s.number,
                    key: segment_key(job, name, s.number),
                    start: s.start,
                    duration: s.duration,
                    size: s.size,
                })
                .collect(),
        };
        let body = serde_json::to_vec_pretty(&index).map_err(|e| TaskError::Permanent(e.to_string()))?;
        ctx.blobs
            .put(&media(index_key(job, name)), body, "application/json")
            .await?;
    }

    let audio = match tracks.get("audio") {
        Some((codecs, timescale, segs)) => {
            let track = read_track(ctx, job, "audio", segs).await?;
            let channels = match track.config.codec {
                CodecConfig::Opus { channels, .. } => channels,
                _ => 2,
            };
            let bytes: u64 = track.rows.iter().map(|r| u64::from(r.size)).sum();
            let secs = track.rows.iter().map(|r| u64::from(r.duration)).sum::<u64>() as f64 / *timescale as f64;
            Some((
                AudioRendition {
                    codecs: codecs.clone(),
                    channels,
                    sample_rate: 48_000,
                    bitrate: if secs > 0.0 {
                        (bytes as f64 * 8.0 / secs) as u64
                    } else {
                        0
                    },
                    timescale: *timescale,
                    init: init_key(job, "audio"),
                    index: index_key(job, "audio"),
                },
                track,
            ))
        }
        None => None,
    };

    let mut renditions = Vec::new();
    let fps = job.plan.frame_rate.0 as f64 / job.plan.frame_rate.1.max(1) as f64;
    let duration_secs = job.plan.total_frames as f64 / fps;
    for rung in &job.rungs {
        let Some((codecs, timescale, segs)) = tracks.get(&rung.name) else {
            return Err(TaskError::Permanent(format!("no output for rendition {}", rung.name)));
        };
        let video = read_track(ctx, job, &rung.name, segs).await?;
        let mut files = vec![&video];
        if let Some((_, a)) = &audio {
            files.push(a);
        }
        write_progressive(ctx, job, &rung.name, &files).await?;
        let bytes: u64 = segs.iter().map(|s| s.size).sum();
        let peak = segs
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| (s.size as f64 * 8.0 * *timescale as f64 / s.duration as f64) as u64)
            .max()
            .unwrap_or(0);
        renditions.push(Rendition {
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            bitrate: if duration_secs > 0.0 {
                (bytes as f64 * 8.0 / duration_secs) as u64
            } else {
                0
            },
            peak_bitrate: peak,
            codecs: codecs.clone(),
            frame_rate: job.plan.frame_rate,
            timescale: *timescale,
            init: init_key(job, &rung.name),
            index: index_key(job, &rung.name),
            progressive: progressive_key(job, &rung.name),
        });
    }
    let output = AssetOutput {
        job_id: job.id,
        bucket: ctx.media_bucket.clone(),
        prefix: job_prefix(job),
        segment_duration: job.plan.segment_duration,
        segment_count: job.plan.segment_count,
        duration_secs,
        renditions,
        audio: audio.map(|(a, _)| a),
    };
    Ok(output)
}

/// A track as stored: its configuration, all its sample rows with the number of samples per segment, and per
/// segment its object and that object's size.
struct ReadTrack {
    config: TrackConfig,
    rows: Vec<SampleRow>,
    runs: Vec<u32>,
    segments: Vec<(String, u64)>,
}

impl ReadTrack {
    /// The track as a progressive file's input, with its own track id there.
    fn stored(&self, track_id: u32) -> StoredTrack<'_> {
        let mut config = self.config.clone();
        config.track_id = track_id;
        StoredTrack {
            config,
            rows: &self.rows,
            runs: &self.runs,
        }
    }
}

/// Reads a track's configuration and the sample tables of its segments (`FINALIZE_READS` at a time): metadata
/// only, never the segments' media bytes.
async fn read_track(
    ctx: &WorkerContext,
    job: &Job,
    name: &str,
    segs: &[SegmentRecord],
) -> Result<ReadTrack, TaskError> {
    let get_all = |key: String| async move {
        let blob = BlobRef::new(&ctx.media_bucket, key);
        let meta = ctx
            .blobs
            .head(&blob)
            .await?
            .ok_or_else(|| TaskError::Transient(format!("{} is missing", blob.key)))?;
        Ok::<_, TaskError>(ctx.blobs.read_range(&blob, 0, meta.size).await?)
    };
    let config: TrackConfig = serde_json::from_slice(&get_all(track_key(job, name)).await?)
        .map_err(|e| TaskError::Permanent(format!("track configuration of {name}: {e}")))?;
    let mut reads = Vec::with_capacity(segs.len());
    for s in segs {
        let (get_all, number, size) = (&get_all, s.number, s.size);
        reads.push(async move {
            let table: SampleTable = serde_json::from_slice(&get_all(table_key(job, name, number)).await?)
                .map_err(|e| TaskError::Permanent(format!("sample table of {name}/{number}: {e}")))?;
            let payload: u64 = table.samples.iter().map(|e| u64::from(e.size)).sum();
            if payload > size || table.samples.is_empty() {
                return Err(TaskError::Permanent(format!(
                    "segment {name}/{number} does not hold its samples"
                )));
            }
            Ok::<Vec<SampleRow>, TaskError>(
                table
                    .samples
                    .iter()
                    .map(|e| SampleRow {
                        size: e.size,
                        duration: e.duration,
                        is_sync: e.sync,
                        composition_offset: e.cto,
                    })
                    .collect(),
            )
        });
    }
    // Tables arrive in segment order; each is parsed, appended and dropped.
    let mut tables = futures::stream::iter(reads).buffered(FINALIZE_READS);
    let (mut rows, mut runs) = (Vec::new(), Vec::with_capacity(segs.len()));
    while let Some(table) = tables.try_next().await? {
        runs.push(table.len() as u32);
        rows.extend(table);
    }
    Ok(ReadTrack {
        config,
        rows,
        runs,
        segments: segs
            .iter()
            .map(|s| (segment_key(job, name, s.number), s.size))
            .collect(),
    })
}

/// Lays out a rendition's progressive MP4 over its segments and writes its head and description.
async fn write_progressive(ctx: &WorkerContext, job: &Job, name: &str, files: &[&ReadTrack]) -> Result<(), TaskError> {
    let stored: Vec<StoredTrack<'_>> = files.iter().enumerate().map(|(i, f)| f.stored(i as u32 + 1)).collect();
    let layout = progressive_layout(&stored).map_err(|e| TaskError::Permanent(format!("progressive {name}: {e}")))?;
    let runs = layout
        .runs
        .iter()
        .map(|r| {
            let (key, object_size) = &files[r.track].segments[r.run];
            // The mdat payload closes the segment: its samples are its last bytes, in order.
            ProgressiveRun {
                key: key.clone(),
                at: object_size - r.size,
                size: r.size,
            }
        })
        .collect();
    let media = |key: String| BlobRef::new(&ctx.media_bucket, key);
    let head = progressive_head_key(job, name);
    ctx.blobs.put(&media(head.clone()), layout.head, "video/mp4").await?;
    let file = ProgressiveFile {
        size: layout.size,
        head,
        runs,
    };
    let body = serde_json::to_vec(&file).map_err(|e| TaskError::Permanent(e.to_string()))?;
    ctx.blobs
        .put(&media(progressive_key(job, name)), body, "application/json")
        .await?;
    Ok(())
}
