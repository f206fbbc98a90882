//! Ports: the traits behind which the platform's storage lives (DynamoDB and S3 in AWS, memory in unit tests).
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{Asset, AssetId, BlobRef, CompletedPart, Page};

/// Persistence of assets. Writes are conditional so that concurrent or repeated handlers cannot clobber each other.
#[async_trait]
pub trait AssetStore: Send + Sync {
    /// Stores a new asset unless one with the same id exists; returns false if it already existed.
    async fn insert(&self, asset: &Asset) -> Result<bool, StoreError>;
    async fn get(&self, id: AssetId) -> Result<Option<Asset>, StoreError>;
    /// Newest first; `cursor` is the opaque `next` of the previous page.
    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Asset>, StoreError>;
    /// Replaces the asset if its stored version is still `asset.version`; stores it with version + 1.
    /// Fails with `StoreError::Conflict` otherwise.
    async fn update(&self, asset: &Asset) -> Result<Asset, StoreError>;
    /// Removes the asset and every record that belongs to it. Deleting a missing asset is not an error.
    /// Assets in state Uploaded (waiting for their probe): a sparse index, so the cost follows their number,
    /// not the catalog's.
    async fn uploaded(&self) -> Result<Vec<Asset>, StoreError>;
    async fn delete(&self, id: AssetId) -> Result<(), StoreError>;
}

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
}

/// Object storage.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// `None` if the object does not exist.
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError>;
    /// Reads `len` bytes at `offset` (fewer at the end of the object).
    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError>;
    /// The whole object, `None` if it does not exist (stores override this with a single request).
    async fn get(&self, blob: &BlobRef) -> Result<Option<Vec<u8>>, StoreError> {
        match self.head(blob).await? {
            None => Ok(None),
            Some(meta) => Ok(Some(self.read_range(blob, 0, meta.size).await?)),
        }
    }
    async fn put(&self, blob: &BlobRef, body: Vec<u8>, content_type: &str) -> Result<(), StoreError>;
    /// Uploads a local file as one object. Stores stream it (memory independent of its size); this default, for
    /// in-memory stores, reads it whole.
    async fn put_file(&self, blob: &BlobRef, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
        let body = tokio::fs::read(path)
            .await
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        self.put(blob, body, content_type).await
    }
    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError>;
    /// Deletes every object under a prefix; returns how many were deleted.
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StoreError>;
    async fn presign_put(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError>;
    /// A URL that downloads the object (with Range) until it expires.
    async fn presign_get(&self, blob: &BlobRef, expires: Duration) -> Result<String, StoreError>;
    async fn create_multipart(&self, blob: &BlobRef) -> Result<String, StoreError>;
    async fn presign_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        expires: Duration,
    ) -> Result<String, StoreError>;
    async fn complete_multipart(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError>;
    /// Uploads one part of a multipart upload; returns its ETag.
    async fn upload_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<String, StoreError>;
    /// The parts of a multipart upload stored so far, in order.
    async fn list_parts(&self, blob: &BlobRef, upload_id: &str) -> Result<Vec<crate::model::StoredPart>, StoreError>;
}

use crate::job::{Job, JobId, JobState, Preset, Task, TrackOutput};

/// Persistence of jobs, their tasks and custom presets.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job and its first tasks (the fan-out adds the others with `add_tasks`).
    async fn create_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError>;
    /// Stores tasks of an existing job; a task that exists already is left as it is (a step may run twice).
    async fn add_tasks(&self, job: JobId, tasks: &[Task]) -> Result<(), StoreError>;
    /// Records that tasks `..upto` are written and queued (never lowers the count).
    async fn mark_queued(&self, job: JobId, upto: u32) -> Result<(), StoreError>;
    /// At most `limit` tasks of a job after task `after` (from the first if None), in order, and the index to
    /// continue after if there are more.
    async fn task_page(
        &self,
        job: JobId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<(Vec<Task>, Option<u32>), StoreError>;
    /// Jobs not in a final state: a sparse index, so the cost follows the running jobs, not the history.
    async fn active_jobs(&self) -> Result<Vec<Job>, StoreError>;
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    async fn list_jobs(&self, asset: AssetId) -> Result<Vec<Job>, StoreError>;
    async fn get_tasks(&self, job: JobId) -> Result<Vec<Task>, StoreError>;
    /// Moves the job to `to` if its state is one of `from`; returns whether it did.
    async fn transition_job(
        &self,
        job: JobId,
        from: &[JobState],
        to: JobState,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Marks a task Processing (attempts + 1) unless it is already Finished or Canceled; returns the task as it
    /// was before, or None if it does not exist.
    async fn start_task(&self, job: JobId, index: u32) -> Result<Option<Task>, StoreError>;
    /// Atomically marks the task Finished with its outputs and counts it on the job — once, however often it is
    /// called. Returns the job's finished-task count after the call, or None if the task was already finished.
    async fn finish_task(&self, job: JobId, index: u32, outputs: &[TrackOutput]) -> Result<Option<u32>, StoreError>;
    /// Marks a task Error or Canceled with a reason (unless it is Finished).
    async fn settle_task(
        &self,
        job: JobId,
        index: u32,
        state: crate::job::TaskState,
        reason: &str,
    ) -> Result<(), StoreError>;
    async fn delete_jobs_of(&self, asset: AssetId) -> Result<(), StoreError>;
    async fn put_preset(&self, preset: &Preset) -> Result<(), StoreError>;
    async fn get_preset(&self, name: &str) -> Result<Option<Preset>, StoreError>;
    async fn list_presets(&self) -> Result<Vec<Preset>, StoreError>;
}

/// A message asking an encoder to run one task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskMessage {
    pub job_id: JobId,
    pub task: u32,
    /// Not a task to run but a step of the job's fan-out: write and queue the tasks from `task` on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expand: bool,
    /// Not a task either: store this rendition of the job's output as one progressive MP4 file (for clients that
    /// download it in one request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialize: Option<String>,
}

/// The queue that fans tasks out to encoder functions.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    async fn send(&self, messages: &[TaskMessage]) -> Result<(), StoreError>;
}

/// A job's state or progress changed (published to the event bus and, if configured, a webhook).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub asset_id: AssetId,
    pub state: JobState,
    pub progress: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// Where job events go. Publishing is best effort: a lost event never fails a job.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &JobEvent);
}

/// Publishes nothing (no bus configured).
pub struct NoEvents;

/// The CDN in front of the packager: cached responses under paths can be dropped (CloudFront invalidations).
#[async_trait]
pub trait CdnCache: Send + Sync {
    /// Drops every cached response under each path (`/stream/{locator}/*`).
    async fn invalidate(&self, paths: &[String]) -> Result<(), StoreError>;

    /// Asks for `paths` to be invalidated again once `delay` has passed (a deferred request that survives this
    /// function). Nothing by default: a CDN without a deferral channel relies on the first invalidation alone.
    async fn invalidate_later(&self, _paths: &[String], _delay: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A deferred invalidation as it waits on its queue (the sweeper makes it when it comes due).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeferredInvalidation {
    pub paths: Vec<String>,
}

/// No CDN (or none configured): nothing to drop.
pub struct NoCdn;

#[async_trait]
impl CdnCache for NoCdn {
    async fn invalidate(&self, _paths: &[String]) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl EventPublisher for NoEvents {
    async fn publish(&self, _event: &JobEvent) {}
}

/// One term of an asset in the cross-asset search index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TermEntry {
    /// Normalized term (see `indexing::normalize_term`).
    pub term: String,
    pub count: u32,
    /// Start times (seconds) of its first occurrences.
    pub times: Vec<f64>,
}

/// The cross-asset search index: which assets contain a term. (Phrases and context come from each asset's
/// transcript.)
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Replaces every term of the asset with these (idempotent).
    async fn put_terms(&self, asset: AssetId, terms: &[TermEntry]) -> Result<(), StoreError>;
    /// Assets whose speech contains the term, with its occurrences there; at most `limit`.
    async fn find_term(&self, term: &str, limit: usize) -> Result<Vec<(AssetId, TermEntry)>, StoreError>;
}
