//! The encoder worker: one SQS message = one task of a job. A video task decodes its chunk once and writes every
//! rung's CMAF segments; the audio task writes the Opus track. Finishing a task is counted atomically on the job;
//! the task that completes the count finalizes the job (segment indexes, renditions, progressive MP4s, asset Ready).
//! Index tasks recognize speech in a window of the audio (see `index`).
//! Redelivered messages redo idempotent writes (deterministic keys) and count nothing twice.
pub mod finalize;
pub mod index;
pub mod materialize;
pub mod scratch;
pub mod task;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::{error, info, info_span, warn, Instrument};
use vod_domain::job::JobId;
use vod_domain::{AssetStore, BlobStore, EventPublisher, JobEvent, JobStore, SearchStore, TaskMessage};
use vod_runtime::{Adapters, AppConfig};

pub use task::TaskError;

/// What the worker needs, built once per cold start.
#[derive(Clone)]
pub struct WorkerContext {
    pub assets: Arc<dyn AssetStore>,
    pub jobs: Arc<dyn JobStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub media_bucket: String,
    /// Local directory for the source file (Lambda: /tmp).
    pub scratch: PathBuf,
    /// Bytes of whole sources kept in `scratch` at most (Lambda's ephemeral storage is 10 GiB at most).
    pub scratch_budget: u64,
    /// Deliveries after which a failing task fails its job (the queue's maxReceiveCount).
    pub max_receive_count: u32,
    /// ARN of the task queue's dead-letter queue: its messages are tasks whose every delivery failed without an
    /// answer (timeout, out of memory, crash), and fail their jobs.
    pub dead_letter_arn: Option<String>,
    pub threads: usize,
    /// Job state and progress events.
    pub events: Arc<dyn EventPublisher>,
    /// The task queue (a job's fan-out steps queue its tasks).
    pub queue: Arc<dyn vod_domain::TaskQueue>,
    /// The cross-asset search index (terms written by indexing jobs).
    pub search: Arc<dyn SearchStore>,
    /// Where the speech engine and its model are.
    pub speech: vod_speech::SpeechConfig,
    pub speech_engine: index::SpeechEngine,
}

impl WorkerContext {
    pub fn new(sdk: &aws_config::SdkConfig, config: &AppConfig, lookup: impl Fn(&str) -> Option<String>) -> Self {
        // Storage-encrypted assets: the source decrypts as it is read, outputs are encrypted as written.
        let a = Adapters::new(sdk, &config.table_name, &config.kms_key_id);
        let scratch = lookup("SCRATCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        // Files of invocations that were abandoned mid-way (timeout, crash) in this instance's /tmp.
        let removed = scratch::remove_leftovers(&scratch, scratch::LEFTOVER_AGE);
        if removed > 0 {
            info!(removed, "leftover scratch files removed");
        }
        WorkerContext {
            queue: a.queue(&config.encode_queue_url),
            blobs: a.blobs,
            assets: a.assets,
            jobs: a.jobs,
            search: a.search,
            speech: vod_speech::SpeechConfig::from_lookup(&lookup),
            speech_engine: index::SpeechEngine::default(),
            media_bucket: config.media_bucket.clone(),
            scratch,
            scratch_budget: lookup("SCRATCH_BUDGET_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(8 << 30),
            max_receive_count: lookup("ENCODE_MAX_RECEIVE_COUNT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
            dead_letter_arn: lookup("DEAD_LETTER_QUEUE_ARN").filter(|a| !a.is_empty()),
            events: config.event_publisher(sdk),
            threads: lookup("ENCODE_THREADS")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        }
    }

    /// From the process environment (Lambda).
    pub async fn from_env() -> Result<Self, vod_runtime::ConfigError> {
        let config = AppConfig::from_env()?;
        let sdk = vod_aws::load_sdk_config().await;
        Ok(Self::new(&sdk, &config, |k| std::env::var(k).ok()))
    }
}

impl WorkerContext {
    /// Publishes the job's current state and progress (best effort).
    pub async fn announce(&self, id: JobId) {
        if let Ok(Some(job)) = self.jobs.get_job(id).await {
            let event = JobEvent {
                job_id: job.id,
                asset_id: job.asset_id,
                state: job.state,
                progress: job.progress(),
                error: job.error.clone(),
                time: chrono::Utc::now(),
            };
            self.events.publish(&event).await;
        }
    }
}

/// Handles a batch of task messages, reporting the ones to retry.
pub async fn handle_batch(ctx: &WorkerContext, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let receives: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let msg: TaskMessage = match record.body.as_deref().map(serde_json::from_str) {
            Some(Ok(m)) => m,
            _ => {
                error!(message_id = %id, "unreadable task message");
                failures.push(failure(id));
                continue;
            }
        };
        let dead = ctx.dead_letter_arn.is_some() && record.event_source_arn == ctx.dead_letter_arn;
        if let Some(rendition) = &msg.materialize {
            // Storing a progressive file is an optimisation for one-request downloads: a failure fails no job.
            let span = info_span!("materialize", job_id = %msg.job_id, rendition = %rendition, message_id = %id);
            let result = match dead {
                true => Err(TaskError::Permanent("every delivery ended without an answer".into())),
                false => {
                    materialize_rendition(ctx, &msg, rendition)
                        .instrument(span.clone())
                        .await
                }
            };
            match result {
                Ok(()) => {}
                Err(TaskError::Transient(reason)) if receives < ctx.max_receive_count => {
                    span.in_scope(|| warn!(%reason, "storing the progressive file failed; it will be retried"));
                    failures.push(failure(id));
                }
                Err(e) => span.in_scope(|| error!(error = %e, "the progressive file was not stored")),
            }
            continue;
        }
        if dead {
            let span = info_span!("dead_letter", job_id = %msg.job_id, task = msg.task, message_id = %id);
            if let Err(e) = task::dead_letter(ctx, &msg).instrument(span).await {
                warn!(message_id = %id, error = %e, "dead task not recorded; it will be retried");
                failures.push(failure(id));
            }
            continue;
        }
        if msg.expand {
            let span =
                info_span!("fan_out", job_id = %msg.job_id, from = msg.task, message_id = %id, attempt = receives);
            let step = vod_domain::jobs::fan_out_step(
                ctx.assets.as_ref(),
                ctx.jobs.as_ref(),
                ctx.queue.as_ref(),
                msg.job_id,
                msg.task,
            )
            .instrument(span)
            .await;
            match step {
                Ok(()) => {}
                Err(e @ vod_domain::DomainError::Invalid(_)) => {
                    task::fail_job(ctx, &msg, &format!("the job's tasks could not be queued: {e}")).await
                }
                Err(e) if receives >= ctx.max_receive_count => {
                    task::fail_job(ctx, &msg, &format!("the job's tasks could not be queued: {e}")).await;
                    failures.push(failure(id));
                }
                Err(e) => {
                    warn!(message_id = %id, error = %e, "fan-out step failed; it will be retried");
                    failures.push(failure(id));
                }
            }
            continue;
        }
        let span = info_span!("task", job_id = %msg.job_id, task = msg.task, message_id = %id, attempt = receives);
        let ok = async {
            match task::run(ctx, &msg).await {
                Ok(()) => true,
                Err(TaskError::Permanent(reason)) => {
                    warn!(%reason, "task failed permanently");
                    task::fail_job(ctx, &msg, &reason).await;
                    true
                }
                Err(TaskError::Transient(reason)) if receives >= ctx.max_receive_count => {
                    error!(%reason, "task failed on its last delivery; the job fails and the message goes to the DLQ");
                    task::fail_job(
                        ctx,
                        &msg,
                        &format!("task {} failed {receives} times: {reason}", msg.task),
                    )
                    .await;
                    false
                }
                Err(TaskError::Transient(reason)) => {
                    warn!(%reason, "task failed; it will be retried");
                    false
                }
            }
        }
        .instrument(span)
        .await;
        if ok {
            info!(message_id = %id, "message done");
        } else {
            failures.push(failure(id));
        }
    }
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}

/// Stores a rendition of a job's output as one progressive file (see `materialize`).
async fn materialize_rendition(ctx: &WorkerContext, msg: &TaskMessage, rendition: &str) -> Result<(), TaskError> {
    let job = ctx
        .jobs
        .get_job(msg.job_id)
        .await?
        .ok_or_else(|| TaskError::Permanent("the job does not exist".into()))?;
    if job.state != vod_domain::job::JobState::Finished || !job.rungs.iter().any(|r| r.name == rendition) {
        return Err(TaskError::Permanent(format!("no finished rendition {rendition}")));
    }
    materialize::materialize(ctx, &finalize::progressive_key(&job, rendition)).await
}

fn failure(id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id;
    f
}
