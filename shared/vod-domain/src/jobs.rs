//! Job use cases: presets (built-in and stored), creating a job for a probed asset (plan; the first tasks written
//! and queued at once, the rest fanned out in queued steps of `FANOUT_STEP`, one message per task), reading jobs
//! with a page of their tasks and progress, and cancelling.
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use tracing::info;

use crate::error::DomainError;
use crate::error::StoreError;
use crate::job::{plan, Job, JobId, JobState, Plan, Preset, RungSpec, Task, TaskKind, TaskState};
use crate::model::{AssetId, AssetState};
use crate::ports::{AssetStore, EventPublisher, JobEvent, JobStore, TaskMessage, TaskQueue};

/// A job with a page of its tasks, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    pub progress: u32,
    pub tasks: Vec<Task>,
    /// More tasks follow: pass this as `tasks_after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tasks: Option<u32>,
}

/// Tasks a job shows per page by default.
pub const TASK_PAGE: u32 = 100;
/// Tasks written and queued by job creation itself; a larger plan fans out in queued steps.
pub const INLINE_TASKS: u32 = 100;
/// Tasks written and queued by one fan-out step (a worker invocation).
pub const FANOUT_STEP: u32 = 1000;

fn task_items(id: JobId, kinds: &[TaskKind], from: u32) -> Vec<Task> {
    let now = Utc::now();
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| Task {
            job_id: id,
            index: from + i as u32,
            kind: kind.clone(),
            state: TaskState::Queued,
            attempts: 0,
            error: None,
            outputs: Vec::new(),
            updated_at: now,
        })
        .collect()
}

/// Writes tasks `from..to` of the job (never overwriting one that exists) and queues their messages. Idempotent:
/// run twice, it writes nothing twice and only queues duplicate messages, which tasks tolerate. The caller records
/// the progress (`mark_queued`) once the step's continuation is queued too.
async fn queue_step(
    jobs: &dyn JobStore,
    queue: &dyn TaskQueue,
    id: JobId,
    kinds: &[TaskKind],
    from: u32,
    to: u32,
) -> Result<(), StoreError> {
    let tasks = task_items(id, &kinds[from as usize..to as usize], from);
    jobs.add_tasks(id, &tasks).await?;
    let messages: Vec<TaskMessage> = (from..to)
        .map(|task| TaskMessage {
            job_id: id,
            task,
            expand: false,
            materialize: None,
        })
        .collect();
    queue.send(&messages).await
}

/// One step of a job's fan-out (a queued `expand` message): re-plans the job's task list from the asset's probe
/// and the job's preset (the planner is deterministic), writes and queues tasks `from..` (at most
/// [`FANOUT_STEP`]), then queues the next step. A cancelled or finished job stops its fan-out.
pub async fn fan_out_step(
    assets: &dyn AssetStore,
    jobs: &dyn JobStore,
    queue: &dyn TaskQueue,
    id: JobId,
    from: u32,
) -> Result<(), DomainError> {
    let Some(job) = jobs.get_job(id).await? else {
        return Ok(());
    };
    if job.state.is_final() || job.state == JobState::Canceling || from >= job.tasks_total {
        return Ok(());
    }
    let asset = assets
        .get(job.asset_id)
        .await?
        .ok_or_else(|| DomainError::asset_not_found(job.asset_id.to_string()))?;
    let media = asset
        .media
        .as_ref()
        .ok_or_else(|| DomainError::Invalid("the asset has no probe results".into()))?;
    let kinds = plan(media, &job.preset).map_err(DomainError::Invalid)?.tasks;
    if kinds.len() != job.tasks_total as usize {
        return Err(DomainError::Invalid(format!(
            "the job's plan changed: {} tasks now, {} when it was created",
            kinds.len(),
            job.tasks_total
        )));
    }
    let to = from.saturating_add(FANOUT_STEP).min(job.tasks_total);
    if job.tasks_queued >= to {
        // A duplicate delivery of a step that completed: its continuation is queued already.
        return Ok(());
    }
    queue_step(jobs, queue, id, &kinds, from, to).await?;
    // The continuation before the progress: a step that dies in between is redelivered and queues it again.
    if to < job.tasks_total {
        queue
            .send(&[TaskMessage {
                job_id: id,
                task: to,
                expand: true,
                materialize: None,
            }])
            .await?;
    }
    jobs.mark_queued(id, to).await?;
    info!(job_id = %id, from, to, total = job.tasks_total, "tasks queued");
    Ok(())
}

/// Limits a job's plan must keep (configuration: `MAX_JOB_TASKS`, `MAX_SOURCE_SECONDS`, and the encoder
/// function's `ENCODE_TIMEOUT_SECONDS` and `ENCODE_MEMORY_MB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobLimits {
    pub max_tasks: u32,
    pub max_source_secs: f64,
    /// The encoder function's timeout: a task must need at most half of it.
    pub encode_timeout_secs: f64,
    /// vCPUs of the encoder function (Lambda gives one per 1769 MB, at most 6).
    pub encode_vcpus: f64,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_tasks: 100_000,
            max_source_secs: 12.0 * 3600.0,
            encode_timeout_secs: 900.0,
            encode_vcpus: 3008.0 / 1769.0,
        }
    }
}

impl JobLimits {
    /// vCPUs Lambda gives a function of `memory_mb`.
    pub fn vcpus_for_memory(memory_mb: f64) -> f64 {
        (memory_mb / 1769.0).clamp(0.1, 6.0)
    }
}

/// rav1e's throughput on one thread in megapixels per second, by speed preset (0..=10): 3.5 at speed 10 is below
/// the benchmark's 4.3 (bench/encode-report.md: 360p30, one thread); slower presets are scaled down
/// conservatively (rav1e's own speed table), so that estimates err towards shorter chunks.
const RAV1E_MPX_PER_SEC: [f64; 11] = [0.03, 0.06, 0.1, 0.16, 0.25, 0.4, 0.6, 0.9, 1.4, 2.2, 3.5];
/// x264's throughput on one thread in megapixels per second, by preset (ultrafast … veryslow): conservative
/// figures for 8-bit 4:2:0 without B-frames (x264 at veryfast runs 1080p at well over 60 frames/s per core).
const X264_MPX_PER_SEC: [f64; 9] = [60.0, 45.0, 30.0, 18.0, 12.0, 9.0, 5.0, 2.5, 1.0];

/// One thread's throughput of a rung's encoder, in megapixels per second.
fn encoder_mpx_per_sec(e: &crate::job::VideoEncoding) -> f64 {
    match e {
        crate::job::VideoEncoding::Av1 { speed } => RAV1E_MPX_PER_SEC[(*speed).min(10) as usize],
        crate::job::VideoEncoding::H264 { preset } => crate::job::X264_PRESETS
            .iter()
            .position(|p| p == preset)
            .map_or(1.0, |i| X264_MPX_PER_SEC[i]),
    }
}

/// Decoding and scaling the source, megapixels per second on one thread.
const DECODE_MPX_PER_SEC: f64 = 60.0;
/// A task's work besides encoding: start, range reads, writes, bookkeeping (seconds), and the pre-roll decoded
/// before a chunk (as a share of the chunk).
const TASK_OVERHEAD_SECS: f64 = 10.0;
const PRE_ROLL_SHARE: f64 = 0.25;

/// Estimated wall seconds of one encoder task on `secs` of a `source_px`-pixel source at `fps` into `rungs`
/// (each rung encodes on its own thread; the threads share the function's vCPUs).
pub fn chunk_cost_secs(secs: f64, fps: f64, source_px: f64, rungs: &[RungSpec], vcpus: f64) -> f64 {
    let frames = secs * fps;
    let encode: f64 = rungs
        .iter()
        .map(|r| frames * f64::from(r.width) * f64::from(r.height) / 1e6 / encoder_mpx_per_sec(&r.encoding))
        .sum();
    let decode = frames * source_px / 1e6 / DECODE_MPX_PER_SEC * (1.0 + PRE_ROLL_SHARE);
    let threads = vcpus.max(0.1).min(rungs.len() as f64 + 1.0);
    (encode + decode) / threads
}

/// The preset with chunks short enough that a task needs at most half of the encoder's timeout, by the estimate
/// above; an error naming the rung, speed and timeout if not even one segment fits.
fn fit_to_timeout(
    mut preset: Preset,
    media: &vod_media::MediaInfo,
    rungs: &[RungSpec],
    limits: &JobLimits,
) -> Result<Preset, String> {
    let Some(v) = media.video.first().filter(|_| preset.encode && !rungs.is_empty()) else {
        return Ok(preset);
    };
    let fps = if v.frame_rate.is_finite() && v.frame_rate > 0.0 {
        v.frame_rate
    } else {
        30.0
    };
    let source_px = f64::from(v.width) * f64::from(v.height);
    let budget = limits.encode_timeout_secs / 2.0 - TASK_OVERHEAD_SECS;
    let per_segment = chunk_cost_secs(preset.segment_duration, fps, source_px, rungs, limits.encode_vcpus);
    let segments = if budget > 0.0 {
        (budget / per_segment).floor()
    } else {
        0.0
    };
    if segments < 1.0 {
        let top = rungs
            .iter()
            .max_by_key(|r| r.width * r.height)
            .map_or(String::new(), |r| {
                format!(" (largest rung {}x{}, {})", r.width, r.height, r.encoding)
            });
        return Err(format!(
            "one {} s segment needs about {per_segment:.0} s of encoding{top}, more than half of the encoder's {:.0} s \
             timeout allows: use a faster speed, shorter segments, or a larger EncodeMemorySize or \
             EncodeTimeoutSeconds",
            preset.segment_duration, limits.encode_timeout_secs
        ));
    }
    preset.max_chunk_secs = preset
        .max_chunk_secs
        .min(segments * preset.segment_duration)
        .max(preset.segment_duration);
    Ok(preset)
}

/// Fewer bits per second of claimed duration than this is not media but a header that lies about its length
/// (a 10 KB file that claims weeks): silence in Opus costs more.
const MIN_CREDIBLE_BITRATE: f64 = 64.0;

/// Checks a source's claimed duration before anything is planned from it.
fn check_duration(media: &vod_media::MediaInfo, limits: &JobLimits) -> Result<(), String> {
    let claimed = media
        .video
        .iter()
        .map(|v| v.duration_secs)
        .chain(media.audio.iter().map(|a| a.duration_secs))
        .chain([media.duration_secs])
        .filter(|d| d.is_finite())
        .fold(0.0f64, f64::max);
    if claimed > limits.max_source_secs {
        return Err(format!(
            "the source lasts {claimed:.0} s; the limit is {:.0} s (MaxSourceSeconds)",
            limits.max_source_secs
        ));
    }
    if claimed > 0.0 && (media.size as f64 * 8.0 / claimed) < MIN_CREDIBLE_BITRATE {
        return Err(format!(
            "the source claims {claimed:.0} s of media in {} bytes ({:.1} bit/s): its duration is not credible",
            media.size,
            media.size as f64 * 8.0 / claimed
        ));
    }
    Ok(())
}

#[derive(Clone)]
pub struct JobService {
    assets: Arc<dyn AssetStore>,
    jobs: Arc<dyn JobStore>,
    queue: Arc<dyn TaskQueue>,
    events: Arc<dyn EventPublisher>,
    limits: JobLimits,
}

impl JobService {
    pub fn new(
        assets: Arc<dyn AssetStore>,
        jobs: Arc<dyn JobStore>,
        queue: Arc<dyn TaskQueue>,
        events: Arc<dyn EventPublisher>,
    ) -> Self {
        JobService {
            assets,
            jobs,
            queue,
            events,
            limits: JobLimits::default(),
        }
    }

    /// The same service with other plan limits.
    pub fn with_limits(mut self, limits: JobLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Publishes the job's current state and progress.
    pub async fn announce(&self, view: &JobView) {
        self.events
            .publish(&JobEvent {
                job_id: view.job.id,
                asset_id: view.job.asset_id,
                state: view.job.state,
                progress: view.progress,
                error: view.job.error.clone(),
                time: Utc::now(),
            })
            .await;
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.jobs
    }

    /// Built-in presets first, then stored ones.
    pub async fn list_presets(&self) -> Result<Vec<Preset>, DomainError> {
        let mut all = Preset::builtin();
        all.extend(self.jobs.list_presets().await?);
        Ok(all)
    }

    pub async fn get_preset(&self, name: &str) -> Result<Preset, DomainError> {
        if let Some(p) = Preset::builtin().into_iter().find(|p| p.name == name) {
            return Ok(p);
        }
        self.jobs.get_preset(name).await?.ok_or_else(|| DomainError::NotFound {
            kind: "preset",
            id: name.to_string(),
        })
    }

    /// Stores a custom preset (built-in names are reserved).
    pub async fn put_preset(&self, preset: Preset) -> Result<Preset, DomainError> {
        preset.validate().map_err(DomainError::Invalid)?;
        if Preset::builtin().iter().any(|p| p.name == preset.name) {
            return Err(DomainError::Conflict(format!("preset {} is built in", preset.name)));
        }
        self.jobs.put_preset(&preset).await?;
        Ok(preset)
    }

    /// Plans and starts a job: every task is stored, then one message per task is sent.
    pub async fn create_job(&self, asset_id: AssetId, preset_name: &str) -> Result<JobView, DomainError> {
        let asset = self
            .assets
            .get(asset_id)
            .await?
            .ok_or_else(|| DomainError::asset_not_found(asset_id.to_string()))?;
        let preset = self.get_preset(preset_name).await?;
        // Encoding needs a probed source (re-encoding a Ready asset means a new asset); indexing alone also runs on
        // Ready assets, adding captions to what is already published.
        let allowed = if preset.encode {
            matches!(asset.state, AssetState::Probed | AssetState::Error)
        } else {
            matches!(asset.state, AssetState::Probed | AssetState::Ready | AssetState::Error)
        };
        if !allowed {
            return Err(DomainError::Conflict(format!(
                "asset {asset_id} is {} — only probed assets can be encoded{}",
                asset.state.as_str(),
                if preset.encode {
                    ""
                } else {
                    " or indexed (or Ready ones indexed)"
                }
            )));
        }
        // A plan beyond the configured limits, or from a duration the file cannot hold, is refused outright.
        if let Some(media) = asset.media.as_ref().filter(|_| asset.state != AssetState::Error) {
            check_duration(media, &self.limits).map_err(DomainError::Invalid)?;
        }
        // A source that cannot be encoded (unsupported codec, corrupt, nothing to plan) gets a job in Error with
        // the reason, before any work is queued.
        let planned = match (&asset.state, asset.media.as_ref()) {
            (AssetState::Error, _) => Err(format!(
                "the source cannot be {}: {}",
                if preset.encode { "encoded" } else { "indexed" },
                asset.error.as_deref().unwrap_or("it failed to probe")
            )),
            (_, None) => Err("the source has no probe results".to_string()),
            (_, Some(media)) if preset.encode => crate::service::check_supported(media)
                .map_err(|e| format!("the source cannot be encoded: {e}"))
                .and_then(|()| plan(media, &preset).map_err(|e| format!("no plan: {e}")))
                .and_then(|p| {
                    preset
                        .rungs_for(media)
                        .map(|r| (p, r))
                        .map_err(|e| format!("no ladder: {e}"))
                }),
            (_, Some(media)) => plan(media, &preset)
                .map(|p| (p, Vec::new()))
                .map_err(|e| format!("cannot index: {e}")),
        };
        let (plan, rungs) = match planned {
            Ok(x) => x,
            Err(reason) => return self.failed_job(asset_id, preset, reason).await,
        };
        // Every task must fit the encoder's time limit with margin: chunks as long as the preset allows and the
        // estimate fits in half the timeout. The job keeps the fitted preset, so its fan-out re-plans the same.
        let (plan, preset) = match asset.media.as_ref() {
            Some(media) if preset.encode => {
                let fitted =
                    fit_to_timeout(preset.clone(), media, &rungs, &self.limits).map_err(DomainError::Invalid)?;
                if fitted.max_chunk_secs < preset.max_chunk_secs {
                    info!(
                        asset_id = %asset_id,
                        max_chunk_secs = fitted.max_chunk_secs,
                        "chunks shortened to fit the encoder's timeout"
                    );
                    (crate::job::plan(media, &fitted).map_err(DomainError::Invalid)?, fitted)
                } else {
                    (plan, preset)
                }
            }
            _ => (plan, preset),
        };
        if plan.tasks.len() > self.limits.max_tasks as usize {
            return Err(DomainError::Invalid(format!(
                "the plan has {} tasks; the limit is {} (MaxJobTasks): choose a preset with longer chunks",
                plan.tasks.len(),
                self.limits.max_tasks
            )));
        }
        // (Never upmixing is the plan's: each audio task has its own channel count, see `AudioSpec::sources`.)
        let now = Utc::now();
        let id = JobId::new_random();
        let total = plan.tasks.len() as u32;
        let inline = total.min(INLINE_TASKS);
        let kinds = plan.tasks.clone();
        let job = Job {
            id,
            asset_id,
            preset,
            rungs,
            tasks_total: total,
            plan,
            state: JobState::Queued,
            created_at: now,
            updated_at: now,
            tasks_done: 0,
            tasks_queued: 0,
            error: None,
        };
        // The first tasks are written with the job and queued at once; the rest fan out in queued steps, so that
        // creation answers quickly whatever the task count.
        self.jobs
            .create_job(&job, &task_items(id, &kinds[..inline as usize], 0))
            .await?;
        let queued = async {
            queue_step(self.jobs.as_ref(), self.queue.as_ref(), id, &kinds, 0, inline).await?;
            if inline < total {
                self.queue
                    .send(&[TaskMessage {
                        job_id: id,
                        task: inline,
                        expand: true,
                        materialize: None,
                    }])
                    .await?;
            }
            self.jobs.mark_queued(id, inline).await
        }
        .await;
        if let Err(e) = queued {
            let reason = format!("could not queue the tasks: {e}");
            self.jobs
                .transition_job(id, &[JobState::Queued], JobState::Error, Some(&reason))
                .await?;
            return Err(e.into());
        }
        self.jobs
            .transition_job(id, &[JobState::Queued], JobState::Scheduled, None)
            .await?;
        info!(job_id = %id, asset_id = %asset_id, tasks = total, "job scheduled");
        let view = self.get_job(id).await?;
        // A worker may already have moved the job on; the Scheduled transition is announced as what it was.
        let mut scheduled = view.clone();
        if scheduled.job.state != JobState::Scheduled && !scheduled.job.state.is_final() {
            scheduled.job.state = JobState::Scheduled;
        }
        self.announce(&scheduled).await;
        Ok(view)
    }

    /// Records a job that fails before any task: state Error with the reason, announced like any job.
    async fn failed_job(&self, asset_id: AssetId, preset: Preset, reason: String) -> Result<JobView, DomainError> {
        let now = Utc::now();
        let job = Job {
            id: JobId::new_random(),
            asset_id,
            preset,
            rungs: Vec::new(),
            plan: Plan {
                frame_rate: (0, 1),
                total_frames: 0,
                segment_duration: 0.0,
                segment_count: 0,
                has_audio: false,
                tasks: Vec::new(),
                rotation: 0,
                thumbnails: None,
            },
            state: JobState::Error,
            created_at: now,
            updated_at: now,
            tasks_total: 0,
            tasks_done: 0,
            tasks_queued: 0,
            error: Some(reason.clone()),
        };
        self.jobs.create_job(&job, &[]).await?;
        info!(job_id = %job.id, asset_id = %asset_id, reason = %reason, "job failed before encoding");
        let view = self.get_job(job.id).await?;
        self.announce(&view).await;
        Ok(view)
    }

    /// A job with its first page of tasks.
    pub async fn get_job(&self, id: JobId) -> Result<JobView, DomainError> {
        self.get_job_page(id, None, TASK_PAGE).await
    }

    /// A job with at most `limit` of its tasks after task `after`.
    pub async fn get_job_page(&self, id: JobId, after: Option<u32>, limit: u32) -> Result<JobView, DomainError> {
        let job = self.jobs.get_job(id).await?.ok_or_else(|| DomainError::NotFound {
            kind: "job",
            id: id.to_string(),
        })?;
        let (tasks, next_tasks) = self.jobs.task_page(id, after, limit).await?;
        Ok(JobView {
            progress: job.progress(),
            job,
            tasks,
            next_tasks,
        })
    }

    pub async fn list_jobs(&self, asset: AssetId) -> Result<Vec<Job>, DomainError> {
        Ok(self.jobs.list_jobs(asset).await?)
    }

    /// The sweeper's part for jobs: a job that is not final and has not changed (no task finished, no fan-out
    /// step) for longer than `stall` ends in Error with the reason — its tasks' messages were lost, or its tasks
    /// died in a way nothing else reported — and its event is published; a job stuck in Canceling ends Canceled.
    /// Every transition is conditional on the state read, so a job that moves on meanwhile is left alone. Returns
    /// the jobs it ended.
    pub async fn sweep(&self, stall: std::time::Duration) -> Result<Vec<JobId>, DomainError> {
        let limit = chrono::Duration::from_std(stall).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let mut ended = Vec::new();
        for job in self.jobs.active_jobs().await? {
            if job.state.is_final() || now - job.updated_at < limit {
                continue;
            }
            let moved = match job.state {
                JobState::Canceling => {
                    self.jobs
                        .transition_job(job.id, &[JobState::Canceling], JobState::Canceled, None)
                        .await?
                }
                state => {
                    let reason = format!(
                        "no task of this job progressed for {} s (the stall limit): its tasks were lost or stopped \
                         without a report ({} of {} done)",
                        stall.as_secs(),
                        job.tasks_done,
                        job.tasks_total
                    );
                    self.jobs
                        .transition_job(job.id, &[state], JobState::Error, Some(&reason))
                        .await?
                }
            };
            if moved {
                info!(job_id = %job.id, "stalled job ended by the sweeper");
                if let Ok(view) = self.get_job_page(job.id, None, 1).await {
                    self.announce(&view).await;
                }
                ended.push(job.id);
            }
        }
        Ok(ended)
    }

    /// Cancels a job: it goes Canceling, workers skip its remaining tasks, and it ends Canceled once none runs.
    pub async fn cancel_job(&self, id: JobId) -> Result<JobView, DomainError> {
        let view = self.get_job(id).await?;
        if view.job.state.is_final() {
            return Err(DomainError::Conflict(format!(
                "job {id} is already {}",
                view.job.state.as_str()
            )));
        }
        self.jobs
            .transition_job(
                id,
                &[JobState::Queued, JobState::Scheduled, JobState::Processing],
                JobState::Canceling,
                None,
            )
            .await?;
        // Tasks not yet started are cancelled now; if nothing is running the job is Canceled at once.
        for t in &self.jobs.get_tasks(id).await? {
            if t.state == TaskState::Queued {
                self.jobs
                    .settle_task(id, t.index, TaskState::Canceled, "job canceled")
                    .await?;
            }
        }
        let tasks = self.jobs.get_tasks(id).await?;
        if !tasks.iter().any(|t| t.state == TaskState::Processing) {
            self.jobs
                .transition_job(id, &[JobState::Canceling], JobState::Canceled, None)
                .await?;
        }
        self.get_job(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryAssetStore, MemoryJobStore, MemoryTaskQueue};
    use crate::model::Asset;

    async fn setup(state: AssetState) -> (JobService, Arc<MemoryJobStore>, Arc<MemoryTaskQueue>, AssetId) {
        setup_secs(state, 3).await
    }

    async fn setup_secs(
        state: AssetState,
        secs: u64,
    ) -> (JobService, Arc<MemoryJobStore>, Arc<MemoryTaskQueue>, AssetId) {
        let assets = Arc::new(MemoryAssetStore::default());
        let jobs = Arc::new(MemoryJobStore::default());
        let queue = Arc::new(MemoryTaskQueue::default());
        let id = AssetId::new_random();
        let media = vod_media::MediaInfo {
            container: vod_media::Container::Mp4,
            size: 40_000 * secs,
            duration_secs: secs as f64,
            bitrate: None,
            video: vec![vod_media::VideoStream {
                codec: "h264".into(),
                width: 320,
                height: 240,
                frame_rate: 25.0,
                frame_count: Some(25 * secs),
                duration_secs: secs as f64,
                bitrate: None,
                rotation: None,
                pixel_aspect: None,
                key_frames_ms: Vec::new(),
                field_order: None,
            }],
            audio: vec![],
        };
        assets
            .insert(&Asset {
                media: Some(media),
                ..Asset::new(id, "a", state)
            })
            .await
            .unwrap();
        (
            JobService::new(assets, jobs.clone(), queue.clone(), Arc::new(crate::ports::NoEvents)),
            jobs,
            queue,
            id,
        )
    }

    #[tokio::test]
    async fn large_plans_fan_out_in_idempotent_steps() {
        // 5000 s in 1 s segments of at most 2 s chunks: 2500 tasks.
        let (svc, jobs, queue, asset) = setup_secs(AssetState::Probed, 5000).await;
        let view = svc.create_job(asset, "tiny").await.unwrap();
        let id = view.job.id;
        assert_eq!(view.job.tasks_total, 2500);
        assert_eq!(view.job.tasks_queued, INLINE_TASKS);
        assert_eq!(view.tasks.len(), TASK_PAGE as usize);
        assert_eq!(view.next_tasks, None, "only the first tasks exist yet");
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), INLINE_TASKS as usize + 1);
        assert_eq!(
            sent.last(),
            Some(&TaskMessage {
                job_id: id,
                task: INLINE_TASKS,
                expand: true,
                materialize: None,
            })
        );
        assert!(
            serde_json::to_value(&view.job).unwrap()["plan"].get("tasks").is_none(),
            "the job item holds no task list"
        );
        // A started task is never reset by a step delivered twice.
        jobs.start_task(id, 5).await.unwrap();
        let mut from = INLINE_TASKS;
        while from < 2500 {
            for _ in 0..2 {
                fan_out_step(svc.assets.as_ref(), jobs.as_ref(), queue.as_ref(), id, from)
                    .await
                    .unwrap();
            }
            from = jobs.get_job(id).await.unwrap().unwrap().tasks_queued;
        }
        let tasks = jobs.get_tasks(id).await.unwrap();
        assert_eq!(tasks.len(), 2500);
        assert!(tasks.iter().enumerate().all(|(i, t)| t.index as usize == i));
        assert_eq!(tasks[5].state, TaskState::Processing);
        let sent = queue.sent.lock().unwrap().clone();
        let mut runs: Vec<u32> = sent.iter().filter(|m| !m.expand).map(|m| m.task).collect();
        runs.sort_unstable();
        assert_eq!(
            runs,
            (0..2500).collect::<Vec<_>>(),
            "every task queued once: repeated steps are dropped"
        );
        // Pages cover every task once.
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = svc.get_job_page(id, after, 700).await.unwrap();
            seen.extend(page.tasks.iter().map(|t| t.index));
            match page.next_tasks {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (0..2500).collect::<Vec<_>>());
    }

    #[test]
    fn chunks_are_shortened_to_fit_half_the_encoder_timeout() {
        let media = |w: u32, h: u32| vod_media::MediaInfo {
            container: vod_media::Container::Mp4,
            size: 100_000_000,
            duration_secs: 600.0,
            bitrate: None,
            video: vec![vod_media::VideoStream {
                codec: "h264".into(),
                width: w,
                height: h,
                frame_rate: 30.0,
                frame_count: Some(18_000),
                duration_secs: 600.0,
                bitrate: None,
                rotation: None,
                pixel_aspect: None,
                key_frames_ms: Vec::new(),
                field_order: None,
            }],
            audio: vec![],
        };
        let adaptive = Preset::builtin()
            .into_iter()
            .find(|p| p.name == "adaptive-av1")
            .unwrap();
        let m = media(1920, 1080);
        let rungs = adaptive.rungs_for(&m).unwrap();
        let lambda = JobLimits::default();
        // 900 s and ~1.7 vCPU: the preset's 8 s chunks fit (a 1080p ladder at speed 8 takes well under 450 s).
        let fitted = fit_to_timeout(adaptive.clone(), &m, &rungs, &lambda).unwrap();
        assert_eq!(fitted.max_chunk_secs, 8.0);
        let cost = chunk_cost_secs(8.0, 30.0, 1920.0 * 1080.0, &rungs, lambda.encode_vcpus);
        assert!(cost < 450.0 && cost > 30.0, "{cost}");
        // A 120 s timeout on one vCPU: one 4 s segment per chunk at most, or none fits.
        let short = JobLimits {
            encode_timeout_secs: 120.0,
            encode_vcpus: 1.0,
            ..lambda
        };
        let per_segment = chunk_cost_secs(4.0, 30.0, 1920.0 * 1080.0, &rungs, 1.0);
        match fit_to_timeout(adaptive.clone(), &m, &rungs, &short) {
            Ok(p) => assert!(
                per_segment <= 50.0 && p.max_chunk_secs == 4.0,
                "{per_segment} {}",
                p.max_chunk_secs
            ),
            Err(e) => assert!(per_segment > 50.0 && e.contains("120 s"), "{e}"),
        }
        // The slowest speed on a 4K rung cannot fit any timeout on one vCPU: refused with the reason.
        let mut slow = adaptive.clone();
        slow.ladder = crate::job::Ladder::Fixed {
            rungs: vec![crate::job::FixedRung {
                height: 2160,
                bitrate_kbps: 15_000,
                encoding: crate::job::VideoEncoding::Av1 { speed: 0 },
            }],
        };
        let m4k = media(3840, 2160);
        let r4k = slow.rungs_for(&m4k).unwrap();
        let err = fit_to_timeout(
            slow,
            &m4k,
            &r4k,
            &JobLimits {
                encode_vcpus: 1.0,
                ..lambda
            },
        )
        .unwrap_err();
        assert!(err.contains("speed 0") && err.contains("900 s"), "{err}");
    }

    #[tokio::test]
    async fn limits_and_incredible_durations_are_refused() {
        let (svc, _, _, asset) = setup_secs(AssetState::Probed, 5000).await;
        let svc = svc.with_limits(JobLimits {
            max_tasks: 1000,
            max_source_secs: 6000.0,
            ..JobLimits::default()
        });
        match svc.create_job(asset, "tiny").await {
            Err(DomainError::Invalid(m)) => assert!(m.contains("2500 tasks") && m.contains("MaxJobTasks"), "{m}"),
            other => panic!("{other:?}"),
        }
        let svc = svc.with_limits(JobLimits {
            max_tasks: 100_000,
            max_source_secs: 4000.0,
            ..JobLimits::default()
        });
        match svc.create_job(asset, "tiny").await {
            Err(DomainError::Invalid(m)) => assert!(m.contains("MaxSourceSeconds"), "{m}"),
            other => panic!("{other:?}"),
        }
        let mut media = svc.assets.get(asset).await.unwrap().unwrap().media.unwrap();
        media.size = 10_000;
        media.duration_secs = 14.0 * 86_400.0;
        let msg = check_duration(&media, &JobLimits::default()).unwrap_err();
        assert!(msg.contains("MaxSourceSeconds"), "{msg}");
        let msg = check_duration(
            &media,
            &JobLimits {
                max_tasks: 1,
                max_source_secs: f64::MAX,
                ..JobLimits::default()
            },
        )
        .unwrap_err();
        assert!(msg.contains("not credible"), "{msg}");
    }

    #[tokio::test]
    async fn creates_plans_and_cancels_jobs() {
        let (svc, jobs, queue, asset) = setup(AssetState::Probed).await;
        let view = svc.create_job(asset, "tiny").await.unwrap();
        assert_eq!(view.job.state, JobState::Scheduled);
        assert_eq!(view.job.plan.segment_count, 3);
        assert_eq!(view.tasks.len(), 2, "two video chunks, no audio");
        assert_eq!(queue.sent.lock().unwrap().len(), 2);
        assert_eq!(view.progress, 0);
        // One task runs, the other is still queued: cancel leaves the job Canceling until the runner settles.
        jobs.start_task(view.job.id, 0).await.unwrap();
        let c = svc.cancel_job(view.job.id).await.unwrap();
        assert_eq!(c.job.state, JobState::Canceling);
        assert_eq!(c.tasks[1].state, TaskState::Canceled);
        assert!(matches!(
            svc.create_job(asset, "nope").await,
            Err(DomainError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn refuses_unprobed_assets_and_counts_tasks_once() {
        let (svc, jobs, _, asset) = setup(AssetState::Uploaded).await;
        assert!(matches!(
            svc.create_job(asset, "tiny").await,
            Err(DomainError::Conflict(_))
        ));
        let (svc, _, _, asset) = setup(AssetState::Probed).await;
        let _ = jobs;
        let view = svc.create_job(asset, "tiny").await.unwrap();
        let store = svc.store();
        assert_eq!(store.finish_task(view.job.id, 0, &[]).await.unwrap(), Some(1));
        assert_eq!(
            store.finish_task(view.job.id, 0, &[]).await.unwrap(),
            None,
            "a redelivery counts nothing"
        );
        assert_eq!(store.finish_task(view.job.id, 1, &[]).await.unwrap(), Some(2));
    }
}
