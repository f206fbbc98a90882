//! Job use cases: presets (built-in and stored), creating a job for a probed asset (plan, tasks, fan-out of one
//! message per task), reading jobs with their tasks and progress, and cancelling.
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use tracing::info;

use crate::error::DomainError;
use crate::job::{plan, Job, JobId, JobState, Plan, Preset, Task, TaskState};
use crate::model::{AssetId, AssetState};
use crate::ports::{AssetStore, EventPublisher, JobEvent, JobStore, TaskMessage, TaskQueue};

/// A job with its tasks, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    pub progress: u32,
    pub tasks: Vec<Task>,
}

#[derive(Clone)]
pub struct JobService {
    assets: Arc<dyn AssetStore>,
    jobs: Arc<dyn JobStore>,
    queue: Arc<dyn TaskQueue>,
    events: Arc<dyn EventPublisher>,
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
        }
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
        // Never upmix: a mono source stays mono (5.1 and more are downmixed to the preset's channels).
        let mut preset = preset;
        if let Some(a) = asset.media.as_ref().and_then(|m| m.audio.first()) {
            preset.audio.channels = preset.audio.channels.min(a.channels.clamp(1, 2) as u8);
        }
        let now = Utc::now();
        let id = JobId::new_random();
        let tasks: Vec<Task> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, kind)| Task {
                job_id: id,
                index: i as u32,
                kind: kind.clone(),
                state: TaskState::Queued,
                attempts: 0,
                error: None,
                outputs: Vec::new(),
                updated_at: now,
            })
            .collect();
        let job = Job {
            id,
            asset_id,
            preset,
            rungs,
            tasks_total: tasks.len() as u32,
            plan,
            state: JobState::Queued,
            created_at: now,
            updated_at: now,
            tasks_done: 0,
            error: None,
        };
        self.jobs.create_job(&job, &tasks).await?;
        let messages: Vec<TaskMessage> = tasks
            .iter()
            .map(|t| TaskMessage {
                job_id: id,
                task: t.index,
            })
            .collect();
        if let Err(e) = self.queue.send(&messages).await {
            let reason = format!("could not queue the tasks: {e}");
            self.jobs
                .transition_job(id, &[JobState::Queued], JobState::Error, Some(&reason))
                .await?;
            return Err(e.into());
        }
        self.jobs
            .transition_job(id, &[JobState::Queued], JobState::Scheduled, None)
            .await?;
        info!(job_id = %id, asset_id = %asset_id, tasks = tasks.len(), "job scheduled");
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
            },
            state: JobState::Error,
            created_at: now,
            updated_at: now,
            tasks_total: 0,
            tasks_done: 0,
            error: Some(reason.clone()),
        };
        self.jobs.create_job(&job, &[]).await?;
        info!(job_id = %job.id, asset_id = %asset_id, reason = %reason, "job failed before encoding");
        let view = self.get_job(job.id).await?;
        self.announce(&view).await;
        Ok(view)
    }

    pub async fn get_job(&self, id: JobId) -> Result<JobView, DomainError> {
        let job = self.jobs.get_job(id).await?.ok_or_else(|| DomainError::NotFound {
            kind: "job",
            id: id.to_string(),
        })?;
        let tasks = self.jobs.get_tasks(id).await?;
        Ok(JobView {
            progress: job.progress(),
            job,
            tasks,
        })
    }

    pub async fn list_jobs(&self, asset: AssetId) -> Result<Vec<Job>, DomainError> {
        Ok(self.jobs.list_jobs(asset).await?)
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
        for t in &view.tasks {
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
        let assets = Arc::new(MemoryAssetStore::default());
        let jobs = Arc::new(MemoryJobStore::default());
        let queue = Arc::new(MemoryTaskQueue::default());
        let id = AssetId::new_random();
        let media = vod_media::MediaInfo {
            container: vod_media::Container::Mp4,
            size: 1,
            duration_secs: 3.0,
            bitrate: None,
            video: vec![vod_media::VideoStream {
                codec: "h264".into(),
                width: 320,
                height: 240,
                frame_rate: 25.0,
                frame_count: Some(75),
                duration_secs: 3.0,
                bitrate: None,
                rotation: None,
                pixel_aspect: None,
                key_frames_ms: Vec::new(),
            }],
            audio: vec![],
        };
        let now = Utc::now();
        assets
            .insert(&Asset {
                id,
                name: "a".into(),
                state,
                created_at: now,
                updated_at: now,
                upload_key: None,
                source: None,
                media: Some(media),
                error: None,
                output: None,
                delivery_policies: Vec::new(),
                storage_key: None,
                captions: None,
                version: 0,
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
