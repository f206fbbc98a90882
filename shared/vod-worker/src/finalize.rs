//! Finalizing a job once all its tasks finished: per track a segment index (number → object, byte size,
//! start, duration), a progressive MP4 per rendition (video + audio), the asset's rendition list with RFC 6381
//! codec strings, asset Ready; for indexing, the captions and search data (see `index`); job Finished. Every write is deterministic, so running it twice is harmless; the
//! job's transition to Finished happens once (conditional update).
use std::collections::BTreeMap;

use chrono::Utc;
use tracing::info;
use vod_cmaf::{progressive_mp4, CodecConfig, Sample, TrackConfig};
use vod_domain::job::{Job, JobId, JobState, SegmentRecord, Task, TaskState, TrackOutput};
use vod_domain::{
    AssetOutput, AssetState, AudioRendition, BlobRef, IndexedSegment, Rendition, SegmentIndex, StoreError,
};

use crate::task::{init_key, job_prefix, segment_key, table_key, track_key, SampleTable, TaskError};
use crate::WorkerContext;

pub fn index_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/index.json", job_prefix(job))
}
pub fn progressive_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.mp4", job_prefix(job))
}

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
            asset.output = Some(o.clone());
            asset.state = AssetState::Ready;
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
            let (cfg, samples) = read_track(ctx, job, "audio", segs).await?;
            let channels = match cfg.codec {
                CodecConfig::Opus { channels, .. } => channels,
                _ => 2,
            };
            let bytes: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
            let secs = samples.iter().map(|s| s.duration as u64).sum::<u64>() as f64 / *timescale as f64;
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
                cfg,
                samples,
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
        let (cfg, samples) = read_track(ctx, job, &rung.name, segs).await?;
        let mut files = vec![(cfg, samples)];
        if let Some((_, acfg, asamples)) = &audio {
            let mut a = acfg.clone();
            a.track_id = 2;
            files.push((a, asamples.clone()));
        }
        let mp4 =
            progressive_mp4(&files).map_err(|e| TaskError::Permanent(format!("progressive {}: {e}", rung.name)))?;
        ctx.blobs
            .put(&media(progressive_key(job, &rung.name)), mp4, "video/mp4")
            .await?;
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
        audio: audio.map(|(a, _, _)| a),
    };
    Ok(output)
}

/// Reads a track's configuration and all its samples back from its segments and sample tables.
async fn read_track(
    ctx: &WorkerContext,
    job: &Job,
    name: &str,
    segs: &[SegmentRecord],
) -> Result<(TrackConfig, Vec<Sample>), TaskError> {
    let get_all = |key: String| async move {
        let blob = BlobRef::new(&ctx.media_bucket, key);
        let meta = ctx
            .blobs
            .head(&blob)
            .await?
            .ok_or_else(|| TaskError::Transient(format!("{} is missing", blob.key)))?;
        Ok::<_, TaskError>(ctx.blobs.read_range(&blob, 0, meta.size).await?)
    };
    let cfg: TrackConfig = serde_json::from_slice(&get_all(track_key(job, name)).await?)
        .map_err(|e| TaskError::Permanent(format!("track configuration of {name}: {e}")))?;
    let mut samples = Vec::new();
    for s in segs {
        let table: SampleTable = serde_json::from_slice(&get_all(table_key(job, name, s.number)).await?)
            .map_err(|e| TaskError::Permanent(format!("sample table of {name}/{}: {e}", s.number)))?;
        let bytes = get_all(segment_key(job, name, s.number)).await?;
        let payload: usize = table.samples.iter().map(|e| e.size as usize).sum();
        if payload > bytes.len() {
            return Err(TaskError::Permanent(format!(
                "segment {name}/{} is shorter than its samples",
                s.number
            )));
        }
        // The mdat payload closes the segment: samples are its last `payload` bytes, in order.
        let mut at = bytes.len() - payload;
        for e in &table.samples {
            let end = at + e.size as usize;
            samples.push(Sample {
                data: bytes[at..end].to_vec(),
                duration: e.duration,
                is_sync: e.sync,
                composition_offset: e.cto,
            });
            at = end;
        }
    }
    Ok((cfg, samples))
}
