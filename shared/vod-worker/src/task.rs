//! Running one task: fetch the source once per warm instance, encode (a video chunk for every rung, or the audio
//! track), write CMAF init and media segments plus their sample tables under deterministic keys, then count the
//! task on its job and finalize when it was the last.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use vod_cmaf::{codec_string, init_segment, media_segment_with_key, Sample, TrackConfig};
use vod_domain::job::{
    AudioEncoding, Job, JobState, KeyFrame, SegmentRecord, TaskKind, TaskState, TrackOutput, VideoEncoding,
};
use vod_domain::{BlobRef, StoreError, TaskMessage, Thumbnails};
use vod_encode::{
    AudioCodec, AudioRequest, EncodeError, InputFormat, Rung, SegmentSamples, SourceFile, ThumbnailRequest,
    VideoChunkRequest,
};

use crate::WorkerContext;

/// Why a task did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Retrying cannot help (bad media, unsupported codec): the job fails now.
    #[error("{0}")]
    Permanent(String),
    /// Storage or network trouble: the message is retried.
    #[error("{0}")]
    Transient(String),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        TaskError::Transient(e.to_string())
    }
}

impl From<vod_domain::DomainError> for TaskError {
    fn from(e: vod_domain::DomainError) -> Self {
        TaskError::Transient(e.to_string())
    }
}

impl From<EncodeError> for TaskError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Io(io) => TaskError::Transient(format!("local I/O failed: {io}")),
            other => TaskError::Permanent(other.to_string()),
        }
    }
}

/// The sample table of one written segment (for building progressive files later).
#[derive(Debug, Serialize, Deserialize)]
pub struct SampleTable {
    pub timescale: u32,
    pub samples: Vec<SampleEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SampleEntry {
    pub size: u32,
    pub duration: u32,
    pub sync: bool,
    pub cto: i32,
}

/// Key prefix of a job's outputs.
pub fn job_prefix(job: &Job) -> String {
    format!("assets/{}/jobs/{}", job.asset_id, job.id)
}
/// Where a job's thumbnail sheets are (`Thumbnails::sheets`).
pub fn thumbnails_prefix(job: &Job) -> String {
    format!("{}/thumbnails/", job_prefix(job))
}
pub fn poster_key(job: &Job) -> String {
    format!("{}/thumbnails/poster.jpg", job_prefix(job))
}
pub fn segment_key(job: &Job, track: &str, number: u32) -> String {
    format!("{}/{track}/seg-{number:05}.m4s", job_prefix(job))
}
pub fn table_key(job: &Job, track: &str, number: u32) -> String {
    format!("{}/{track}/seg-{number:05}.json", job_prefix(job))
}
pub fn init_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/init.mp4", job_prefix(job))
}
pub fn track_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/track.json", job_prefix(job))
}

/// Marks the task and its job as failed.
pub async fn fail_job(ctx: &WorkerContext, msg: &TaskMessage, reason: &str) {
    let _ = ctx
        .jobs
        .settle_task(msg.job_id, msg.task, TaskState::Error, reason)
        .await;
    let _ = ctx
        .jobs
        .transition_job(
            msg.job_id,
            &[JobState::Queued, JobState::Scheduled, JobState::Processing],
            JobState::Error,
            Some(reason),
        )
        .await;
    ctx.announce(msg.job_id).await;
}

/// A task's message reached the dead-letter queue: every delivery ended without an answer (the invocation timed
/// out, ran out of memory or crashed; a task that fails with an error fails its job itself). Unless the task
/// finished after all, it and its job end in Error with the reason.
pub async fn dead_letter(ctx: &WorkerContext, msg: &TaskMessage) -> Result<(), TaskError> {
    let Some(job) = ctx.jobs.get_job(msg.job_id).await? else {
        warn!("dead task of a deleted job");
        return Ok(());
    };
    if job.state.is_final() {
        return Ok(());
    }
    // This task alone (a page of one from its index), not the job's thousands.
    let (page, _) = ctx.jobs.task_page(msg.job_id, msg.task.checked_sub(1), 1).await?;
    let finished = page
        .iter()
        .any(|t| t.index == msg.task && t.state == TaskState::Finished);
    if finished {
        return Ok(());
    }
    let reason = format!(
        "task {} did not complete in {} deliveries: each invocation ended without an answer (function timeout, \
         out of memory or crash)",
        msg.task, ctx.max_receive_count
    );
    warn!(%reason, "dead task fails its job");
    fail_job(ctx, msg, &reason).await;
    Ok(())
}

/// Removes every object of a job that no longer exists (its asset was deleted while its tasks ran).
pub(crate) async fn discard(ctx: &WorkerContext, job: &Job) -> Result<(), TaskError> {
    let removed = ctx
        .blobs
        .delete_prefix(&ctx.media_bucket, &format!("{}/", job_prefix(job)))
        .await?;
    info!(job_id = %job.id, asset_id = %job.asset_id, removed, "the job was deleted while it ran: its objects are removed");
    Ok(())
}

/// Settles a task of a cancelled job; the job becomes Canceled once no task runs.
async fn cancel_task(ctx: &WorkerContext, msg: &TaskMessage) -> Result<(), TaskError> {
    ctx.jobs
        .settle_task(msg.job_id, msg.task, TaskState::Canceled, "job canceled")
        .await?;
    let tasks = ctx.jobs.get_tasks(msg.job_id).await?;
    let running = tasks
        .iter()
        .any(|t| matches!(t.state, TaskState::Processing | TaskState::Queued));
    if !running
        && ctx
            .jobs
            .transition_job(msg.job_id, &[JobState::Canceling], JobState::Canceled, None)
            .await?
    {
        ctx.announce(msg.job_id).await;
    }
    info!("task canceled");
    Ok(())
}

pub async fn run(ctx: &WorkerContext, msg: &TaskMessage) -> Result<(), TaskError> {
    let Some(job) = ctx.jobs.get_job(msg.job_id).await? else {
        info!("job no longer exists; dropping the task");
        return Ok(());
    };
    match job.state {
        JobState::Canceling | JobState::Canceled => return cancel_task(ctx, msg).await,
        JobState::Error | JobState::Finished => return Ok(()),
        _ => {}
    }
    ctx.jobs
        .transition_job(
            job.id,
            &[JobState::Queued, JobState::Scheduled],
            JobState::Processing,
            None,
        )
        .await?;
    let Some(before) = ctx.jobs.start_task(job.id, msg.task).await? else {
        return Err(TaskError::Permanent(format!("job {} has no task {}", job.id, msg.task)));
    };
    match before.state {
        TaskState::Finished => {
            info!("task already finished (redelivery)");
            return crate::finalize::maybe_finalize(ctx, job.id).await;
        }
        TaskState::Canceled => return Ok(()),
        _ => {}
    }
    let asset = ctx
        .assets
        .get(job.asset_id)
        .await?
        .ok_or_else(|| TaskError::Permanent(format!("asset {} no longer exists", job.asset_id)))?;
    let source = asset
        .source
        .clone()
        .ok_or_else(|| TaskError::Permanent("the asset has no source file".into()))?;
    let need = match &before.kind {
        TaskKind::Video {
            first_segment,
            end_segment,
        } => vod_media::Need::Video {
            start_secs: *first_segment as f64 * job.plan.segment_duration,
            end_secs: *end_segment as f64 * job.plan.segment_duration,
        },
        TaskKind::Audio { .. } | TaskKind::Index { .. } => vod_media::Need::Audio,
        TaskKind::Thumbnails { sheet } => {
            let times = job
                .plan
                .thumbnails
                .as_ref()
                .map(|t| t.times(*sheet))
                .unwrap_or_default();
            let poster = match (sheet, &job.plan.thumbnails) {
                (0, Some(t)) => t.poster_secs,
                _ => 0.0,
            };
            vod_media::Need::Video {
                start_secs: times.first().copied().unwrap_or(0.0),
                end_secs: times.last().copied().unwrap_or(0.0).max(poster) + 1.0,
            }
        }
    };
    let blob = BlobRef::new(&source.bucket, &source.key);
    // The task encodes the file that was probed, or nothing: a new upload to the same key is not it.
    match ctx.blobs.head(&blob).await? {
        None => {
            return Err(TaskError::Permanent(
                "the source file was deleted after it was probed".into(),
            ))
        }
        Some(meta) if meta.etag != source.etag => {
            return Err(TaskError::Permanent(format!(
                "the source file was replaced after it was probed (ETag {}, probed {}): a job encodes only the \
                 file it probed",
                meta.etag, source.etag
            )))
        }
        Some(_) => {}
    }
    let input = input_format(&asset)?;
    let format = asset.media.as_ref().and_then(|m| vod_media::format_of(m.container));
    let part = match format {
        Some(format) => {
            fetch_ranges(
                ctx,
                format,
                &blob,
                &source.etag,
                source.size,
                need,
                &format!("{}-{}", job.id, msg.task),
            )
            .await?
        }
        None => None,
    };
    let temp = part.is_some();
    let path = match part {
        Some(p) => p,
        None => fetch_source(ctx, &blob, &source.etag, source.size).await?,
    };
    // A sparse partial copy belongs to this task only.
    struct Cleanup(Option<PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let _cleanup = Cleanup(temp.then(|| path.clone()));

    let outputs = match before.kind.clone() {
        TaskKind::Video {
            first_segment,
            end_segment,
        } => {
            let rungs: Vec<Rung> = job
                .rungs
                .iter()
                .map(|r| {
                    let codec = match &r.encoding {
                        VideoEncoding::Av1 { speed } => vod_encode::VideoCodec::Av1 { speed: *speed },
                        VideoEncoding::H264 { preset } => vod_encode::VideoCodec::H264 {
                            preset: vod_encode::X264Preset::parse(preset)
                                .ok_or_else(|| TaskError::Permanent(format!("unknown x264 preset {preset:?}")))?,
                        },
                    };
                    Ok(Rung {
                        name: r.name.clone(),
                        width: r.width,
                        height: r.height,
                        bitrate_kbps: r.bitrate_kbps,
                        codec,
                    })
                })
                .collect::<Result<_, TaskError>>()?;
            let encode = |src: PathBuf| {
                let (plan, threads, rungs, input) = (job.plan.clone(), ctx.threads, rungs.clone(), input.clone());
                tokio::task::spawn_blocking(move || {
                    vod_encode::encode_video_chunk(&VideoChunkRequest {
                        rotation: plan.rotation,
                        source: SourceFile {
                            path: &src,
                            format: &input,
                        },
                        frame_rate: plan.frame_rate,
                        segment_duration: plan.segment_duration,
                        first_segment,
                        end_segment,
                        total_frames: plan.total_frames,
                        rungs: &rungs,
                        threads,
                    })
                })
            };
            let crashed = |e: tokio::task::JoinError| TaskError::Transient(format!("encoder crashed: {e}"));
            let mut chunks = encode(path.clone()).await.map_err(crashed)?;
            // A partial copy that does not decode (a range plan that missed bytes the demuxer wanted) costs a
            // download of the whole source, never a failed task.
            if let (true, Err(e @ (EncodeError::Open(_) | EncodeError::Decode(_) | EncodeError::NoVideo))) =
                (temp, &chunks)
            {
                tracing::warn!(error = %e, "the partial copy did not decode; encoding from the whole source");
                let whole = fetch_source(ctx, &blob, &source.etag, source.size).await?;
                chunks = encode(whole).await.map_err(crashed)?;
            }
            let chunks = chunks?;
            let mut outputs = Vec::new();
            for chunk in chunks {
                outputs.push(write_track(ctx, &job, &chunk.rung, &chunk.track, &chunk.segments).await?);
            }
            outputs
        }
        TaskKind::Audio { ordinal, source } => {
            let (spec, seg, src) = (job.preset.audio.clone(), job.plan.segment_duration, path.clone());
            // The `mdhd` of the track holds the ISO 639-2/T code of its language.
            let language = source.language.as_deref().and_then(vod_media::iso639_2t);
            let (streams, channels) = (source.streams.clone(), source.channels);
            let codecs: Vec<AudioCodec> = spec
                .codecs
                .iter()
                .map(|c| match c {
                    AudioEncoding::Opus => AudioCodec::Opus,
                    AudioEncoding::Aac => AudioCodec::Aac,
                })
                .collect();
            let input = input.clone();
            let tracks = tokio::task::spawn_blocking(move || {
                vod_encode::encode_audio(&AudioRequest {
                    codecs: &codecs,
                    source: SourceFile {
                        path: &src,
                        format: &input,
                    },
                    bitrate_kbps: spec.bitrate_kbps,
                    channels: if channels == 0 { spec.channels } else { channels },
                    segment_duration: seg,
                    streams: &streams,
                    language,
                })
            })
            .await
            .map_err(|e| TaskError::Transient(format!("encoder crashed: {e}")))??;
            let mut outputs = Vec::with_capacity(tracks.len());
            for (encoding, audio) in job.preset.audio.codecs.iter().zip(&tracks) {
                let name = encoding.track_of(ordinal);
                let mut out = write_track(ctx, &job, &name, &audio.track, &audio.segments).await?;
                out.language = source.language.clone();
                out.label = source.label.clone();
                outputs.push(out);
            }
            outputs
        }
        TaskKind::Thumbnails { sheet } => {
            let plan = job
                .plan
                .thumbnails
                .clone()
                .ok_or_else(|| TaskError::Permanent("the job plans no thumbnails".into()))?;
            let (src, rotation, threads) = (path.clone(), job.plan.rotation, ctx.threads);
            let times = plan.times(sheet);
            let input = input.clone();
            let made = tokio::task::spawn_blocking(move || {
                let source = SourceFile {
                    path: &src,
                    format: &input,
                };
                let sheet_jpeg = vod_encode::sprite_sheet(&ThumbnailRequest {
                    source,
                    times: &times,
                    tile: (plan.width, plan.height),
                    columns: plan.columns,
                    rows: plan.rows,
                    rotation,
                    threads,
                })?;
                let poster = match sheet {
                    0 => Some(vod_encode::poster(
                        source,
                        plan.poster_secs,
                        (plan.poster_width, plan.poster_height),
                        rotation,
                    )?),
                    _ => None,
                };
                Ok::<_, EncodeError>((sheet_jpeg, poster))
            })
            .await
            .map_err(|e| TaskError::Transient(format!("thumbnails crashed: {e}")))??;
            let media = |key: String| BlobRef::new(&ctx.media_bucket, key);
            ctx.blobs
                .put(
                    &media(format!("{}{}", thumbnails_prefix(&job), Thumbnails::sheet_name(sheet))),
                    made.0,
                    "image/jpeg",
                )
                .await?;
            if let Some(poster) = made.1 {
                ctx.blobs.put(&media(poster_key(&job)), poster, "image/jpeg").await?;
            }
            Vec::new()
        }
        kind @ TaskKind::Index { .. } => {
            crate::index::run_task(ctx, &job, msg.task, &kind, &path, &input).await?;
            Vec::new()
        }
    };

    // A job deleted while this task ran (its asset was deleted) keeps nothing of it: deletion removes the job
    // records before the asset's objects, so whatever this task wrote before that is swept by the deletion and
    // what it wrote after is removed here. A job cancelled meanwhile does not finish.
    match ctx.jobs.get_job(job.id).await? {
        None => return discard(ctx, &job).await,
        Some(now) if matches!(now.state, JobState::Canceling | JobState::Canceled) => {
            return cancel_task(ctx, msg).await
        }
        Some(_) => {}
    }
    match ctx.jobs.finish_task(job.id, msg.task, &outputs).await? {
        Some(done) => {
            info!(
                done,
                total = job.tasks_total,
                progress = done * 100 / (job.tasks_total + 1),
                "task finished"
            );
            ctx.announce(job.id).await;
            if done >= job.tasks_total {
                crate::finalize::maybe_finalize(ctx, job.id).await?;
            }
        }
        None => crate::finalize::maybe_finalize(ctx, job.id).await?,
    }
    Ok(())
}

/// Writes a track's init segment, configuration, media segments and sample tables; returns what was written.
async fn write_track(
    ctx: &WorkerContext,
    job: &Job,
    name: &str,
    track: &TrackConfig,
    segments: &[SegmentSamples],
) -> Result<TrackOutput, TaskError> {
    let media = |key: String| BlobRef::new(&ctx.media_bucket, key);
    let init = init_segment(track).map_err(|e| TaskError::Permanent(format!("muxing {name}: {e}")))?;
    ctx.blobs.put(&media(init_key(job, name)), init, "video/mp4").await?;
    let cfg = serde_json::to_vec(track).map_err(|e| TaskError::Permanent(e.to_string()))?;
    ctx.blobs
        .put(&media(track_key(job, name)), cfg, "application/json")
        .await?;
    let mut records = Vec::with_capacity(segments.len());
    for seg in segments {
        let (bytes, key) = media_segment_with_key(track, seg.number + 1, seg.base_media_decode_time, &seg.samples)
            .map_err(|e| TaskError::Permanent(format!("muxing {name} segment {}: {e}", seg.number)))?;
        let table = SampleTable {
            timescale: track.timescale,
            samples: seg
                .samples
                .iter()
                .map(|s: &Sample| SampleEntry {
                    size: s.data.len() as u32,
                    duration: s.duration,
                    sync: s.is_sync,
                    cto: s.composition_offset,
                })
                .collect(),
        };
        records.push(SegmentRecord {
            number: seg.number,
            start: seg.base_media_decode_time,
            duration: seg.samples.iter().map(|s| s.duration as u64).sum(),
            size: bytes.len() as u64,
            key_frame: track.codec.is_video().then_some(KeyFrame {
                at: key.start,
                len: key.end - key.start,
            }),
        });
        ctx.blobs
            .put(&media(segment_key(job, name, seg.number)), bytes, "video/iso.segment")
            .await?;
        let table = serde_json::to_vec(&table).map_err(|e| TaskError::Permanent(e.to_string()))?;
        ctx.blobs
            .put(&media(table_key(job, name, seg.number)), table, "application/json")
            .await?;
    }
    Ok(TrackOutput {
        track: name.to_string(),
        codecs: codec_string(&track.codec).map_err(|e| TaskError::Permanent(e.to_string()))?,
        timescale: track.timescale,
        segments: records,
        language: None,
        label: None,
    })
}

/// Plans the byte ranges of a source that a task decodes (`Ok(None)`: read the whole source).
/// Fetches only the byte ranges this task decodes, as the source's container format plans them (MP4/MOV sample
/// tables, Matroska/WebM cues), into a sparse file of the source's size, so a chunk of a long mezzanine costs its own bytes, not the
/// whole file. `None`: the ranges cannot be planned; download the whole source instead.
async fn fetch_ranges(
    ctx: &WorkerContext,
    format: &'static dyn vod_media::ContainerFormat,
    blob: &BlobRef,
    etag: &str,
    size: u64,
    need: vod_media::Need,
    task: &str,
) -> Result<Option<PathBuf>, TaskError> {
    let src = vod_domain::service::BlobSource::new(ctx.blobs.clone(), blob.clone(), size);
    let planned = tokio::task::spawn_blocking(move || format.needed_ranges(&src, need))
        .await
        .map_err(|e| TaskError::Transient(format!("range planning crashed: {e}")))?;
    let ranges = match planned {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => {
            info!(error = %e, "cannot plan byte ranges; reading the whole source");
            return Ok(None);
        }
    };
    let fetched: u64 = ranges.iter().map(|(a, z)| z - a).sum();
    if fetched * 10 >= size * 9 {
        return Ok(None);
    }
    let safe: String = etag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let path = ctx
        .scratch
        .join(format!("{}{safe}-{task}", crate::scratch::PART_PREFIX));
    let io = |e: std::io::Error| TaskError::Transient(format!("writing {}: {e}", path.display()));
    std::fs::create_dir_all(&ctx.scratch).map_err(io)?;
    let f = std::fs::File::create(&path).map_err(io)?;
    // Removed if this task fails or is cancelled while fetching; the caller removes it after the task.
    let guard = crate::scratch::TempFile::new(path.clone());
    f.set_len(size).map_err(io)?;
    {
        use std::os::unix::fs::FileExt;
        const PIECE: u64 = 16 * 1024 * 1024;
        for (a, z) in &ranges {
            let mut offset = *a;
            while offset < *z {
                let bytes = ctx.blobs.read_range(blob, offset, PIECE.min(z - offset)).await?;
                if bytes.is_empty() {
                    return Err(TaskError::Transient("the source ended early".into()));
                }
                f.write_all_at(&bytes, offset).map_err(io)?;
                offset += bytes.len() as u64;
            }
        }
    }
    info!(
        ranges = ranges.len(),
        fetched_bytes = fetched,
        source_bytes = size,
        "source ranges fetched"
    );
    guard.keep();
    Ok(Some(path))
}

/// Downloads the source into the scratch directory once per warm instance (keyed by ETag; written atomically).
async fn fetch_source(ctx: &WorkerContext, blob: &BlobRef, etag: &str, size: u64) -> Result<PathBuf, TaskError> {
    let safe: String = etag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let path = ctx.scratch.join(format!("{}{safe}", crate::scratch::SOURCE_PREFIX));
    if std::fs::metadata(&path).map(|m| m.len() == size).unwrap_or(false) {
        crate::scratch::touch(&path);
        return Ok(path);
    }
    let tmp = ctx.scratch.join(format!(
        "{}{safe}.{}.part",
        crate::scratch::SOURCE_PREFIX,
        std::process::id()
    ));
    let io = |e: std::io::Error| TaskError::Transient(format!("writing {}: {e}", tmp.display()));
    std::fs::create_dir_all(&ctx.scratch).map_err(io)?;
    // The cache of whole sources stays within its budget: the least recently used go first.
    let evicted = crate::scratch::make_room(&ctx.scratch, size, ctx.scratch_budget).map_err(TaskError::Permanent)?;
    if evicted > 0 {
        info!(evicted_bytes = evicted, "cached sources evicted");
    }
    // A failed or abandoned download never stays behind.
    let guard = crate::scratch::TempFile::new(tmp.clone());
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        const PIECE: u64 = 16 * 1024 * 1024;
        let mut offset = 0;
        while offset < size {
            let bytes = ctx.blobs.read_range(blob, offset, PIECE.min(size - offset)).await?;
            if bytes.is_empty() {
                return Err(TaskError::Transient("the source ended early".into()));
            }
            offset += bytes.len() as u64;
            f.write_all(&bytes).map_err(io)?;
        }
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    guard.keep();
    Ok(path)
}

/// The format the probe accepted for the asset's source: all the encoder will open it as.
fn input_format(asset: &vod_domain::Asset) -> Result<InputFormat, TaskError> {
    let media = asset
        .media
        .as_ref()
        .ok_or_else(|| TaskError::Permanent("the asset's source has no probe result".into()))?;
    Ok(InputFormat {
        demuxer: media.container.ffmpeg_demuxer().into(),
        video_codecs: media.video.iter().map(|v| v.codec.clone()).collect(),
        audio_codecs: media.audio.iter().map(|a| a.codec.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    /// The presets a rung may name (the domain's list) are exactly the encoder's, in the same order.
    #[test]
    fn x264_preset_names_match_the_encoder() {
        let encoder: Vec<&str> = vod_encode::X264Preset::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(encoder, vod_domain::job::X264_PRESETS);
        for name in vod_domain::job::X264_PRESETS {
            assert!(vod_encode::X264Preset::parse(name).is_some(), "{name}");
        }
        assert!(vod_encode::X264Preset::parse("warp").is_none());
    }
}
