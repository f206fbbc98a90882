//! In-memory implementations of the ports, for unit tests and examples (never for end-to-end tests).
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{Asset, AssetId, AssetState, BlobRef, CompletedPart, Page};
use crate::ports::{AssetStore, BlobMeta, BlobStore};

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("memory store lock poisoned".into())
}

#[derive(Default)]
pub struct MemoryAssetStore {
    assets: Mutex<HashMap<AssetId, Asset>>,
}

#[async_trait]
impl AssetStore for MemoryAssetStore {
    async fn uploaded(&self) -> Result<Vec<Asset>, StoreError> {
        let m = self.assets.lock().map_err(poisoned)?;
        Ok(m.values()
            .filter(|a| a.state == AssetState::Uploaded)
            .cloned()
            .collect())
    }
    async fn insert(&self, asset: &Asset) -> Result<bool, StoreError> {
        let mut m = self.assets.lock().map_err(poisoned)?;
        if m.contains_key(&asset.id) {
            return Ok(false);
        }
        m.insert(asset.id, asset.clone());
        Ok(true)
    }

    async fn get(&self, id: AssetId) -> Result<Option<Asset>, StoreError> {
        Ok(self.assets.lock().map_err(poisoned)?.get(&id).cloned())
    }

    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Asset>, StoreError> {
        let m = self.assets.lock().map_err(poisoned)?;
        let mut all: Vec<Asset> = m.values().cloned().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.0.cmp(&a.id.0)));
        let start = cursor.and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
        let items: Vec<Asset> = all.iter().skip(start).take(limit).cloned().collect();
        let next = (start + items.len() < all.len()).then(|| (start + items.len()).to_string());
        Ok(Page { items, next })
    }

    async fn update(&self, asset: &Asset) -> Result<Asset, StoreError> {
        let mut m = self.assets.lock().map_err(poisoned)?;
        match m.get(&asset.id) {
            Some(cur) if cur.version == asset.version => {
                let mut stored = asset.clone();
                stored.version += 1;
                m.insert(asset.id, stored.clone());
                Ok(stored)
            }
            _ => Err(StoreError::Conflict(format!("asset {}", asset.id))),
        }
    }

    async fn delete(&self, id: AssetId) -> Result<(), StoreError> {
        self.assets.lock().map_err(poisoned)?.remove(&id);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryBlobStore {
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    /// Parts of multipart uploads: (upload id, part number) → bytes.
    parts: Mutex<BTreeMap<(String, i32), Vec<u8>>>,
    /// Number of ranged reads served (to check that probing reads little).
    pub range_reads: std::sync::atomic::AtomicU64,
}

impl MemoryBlobStore {
    pub fn insert(&self, bucket: &str, key: &str, body: Vec<u8>) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert((bucket.into(), key.into()), body);
        }
    }
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        self.objects
            .lock()
            .map(|m| m.contains_key(&(bucket.to_string(), key.to_string())))
            .unwrap_or(false)
    }
}

fn etag_of(body: &[u8]) -> String {
    // A content hash stands in for S3's MD5 ETag: equal bodies, equal tags.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn head(&self, blob: &BlobRef) -> Result<Option<BlobMeta>, StoreError> {
        let m = self.objects.lock().map_err(poisoned)?;
        Ok(m.get(&(blob.bucket.clone(), blob.key.clone())).map(|b| BlobMeta {
            size: b.len() as u64,
            etag: etag_of(b),
            content_type: None,
        }))
    }

    async fn read_range(&self, blob: &BlobRef, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        self.range_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let m = self.objects.lock().map_err(poisoned)?;
        let b = m
            .get(&(blob.bucket.clone(), blob.key.clone()))
            .ok_or_else(|| StoreError::Backend(format!("no such object {}", blob.key)))?;
        let start = (offset as usize).min(b.len());
        let end = start.saturating_add(len as usize).min(b.len());
        Ok(b[start..end].to_vec())
    }

    async fn put(&self, blob: &BlobRef, body: Vec<u8>, _content_type: &str) -> Result<(), StoreError> {
        self.insert(&blob.bucket, &blob.key, body);
        Ok(())
    }

    async fn delete(&self, blob: &BlobRef) -> Result<(), StoreError> {
        self.objects
            .lock()
            .map_err(poisoned)?
            .remove(&(blob.bucket.clone(), blob.key.clone()));
        Ok(())
    }

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StoreError> {
        let mut m = self.objects.lock().map_err(poisoned)?;
        let before = m.len();
        m.retain(|(b, k), _| !(b == bucket && k.starts_with(prefix)));
        Ok((before - m.len()) as u64)
    }

    async fn presign_put(&self, blob: &BlobRef, _expires: Duration) -> Result<String, StoreError> {
        Ok(format!("memory://{}/{}", blob.bucket, blob.key))
    }

    async fn presign_get(&self, blob: &BlobRef, _expires: Duration) -> Result<String, StoreError> {
        Ok(format!("memory://{}/{}", blob.bucket, blob.key))
    }

    async fn create_multipart(&self, blob: &BlobRef) -> Result<String, StoreError> {
        Ok(format!("upload-{}", blob.key.len()))
    }

    async fn presign_part(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        _expires: Duration,
    ) -> Result<String, StoreError> {
        Ok(format!(
            "memory://{}/{}?uploadId={upload_id}&partNumber={part_number}",
            blob.bucket, blob.key
        ))
    }

    async fn upload_part(
        &self,
        _blob: &BlobRef,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let etag = etag_of(&body);
        self.parts
            .lock()
            .map_err(poisoned)?
            .insert((upload_id.to_string(), part_number), body);
        Ok(etag)
    }

    async fn complete_multipart(
        &self,
        blob: &BlobRef,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        // Parts uploaded through `upload_part` become the object; presigned parts never reach this store.
        let mut stored = self.parts.lock().map_err(poisoned)?;
        if parts.is_empty()
            || !parts
                .iter()
                .all(|p| stored.contains_key(&(upload_id.to_string(), p.part_number)))
        {
            return Ok(());
        }
        let mut body = Vec::new();
        for p in parts {
            if let Some(b) = stored.remove(&(upload_id.to_string(), p.part_number)) {
                body.extend(b);
            }
        }
        drop(stored);
        self.insert(&blob.bucket, &blob.key, body);
        Ok(())
    }

    async fn list_parts(&self, _blob: &BlobRef, _upload_id: &str) -> Result<Vec<crate::model::StoredPart>, StoreError> {
        Ok(Vec::new())
    }
}

use crate::job::{Job, JobId, JobState, Preset, Task, TaskState, TrackOutput};
use crate::ports::{JobStore, TaskMessage, TaskQueue};

#[derive(Default)]
pub struct MemoryJobStore {
    jobs: Mutex<HashMap<JobId, Job>>,
    tasks: Mutex<BTreeMap<(uuid::Uuid, u32), Task>>,
    presets: Mutex<BTreeMap<String, Preset>>,
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let m = self.jobs.lock().map_err(poisoned)?;
        Ok(m.values().filter(|j| !j.state.is_final()).cloned().collect())
    }
    async fn create_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        self.jobs.lock().map_err(poisoned)?.insert(job.id, job.clone());
        let mut t = self.tasks.lock().map_err(poisoned)?;
        for task in tasks {
            t.insert((job.id.0, task.index), task.clone());
        }
        Ok(())
    }
    async fn add_tasks(&self, job: JobId, tasks: &[Task]) -> Result<(), StoreError> {
        let mut t = self.tasks.lock().map_err(poisoned)?;
        for task in tasks {
            t.entry((job.0, task.index)).or_insert_with(|| task.clone());
        }
        Ok(())
    }
    async fn mark_queued(&self, job: JobId, upto: u32) -> Result<(), StoreError> {
        if let Some(j) = self.jobs.lock().map_err(poisoned)?.get_mut(&job) {
            j.tasks_queued = j.tasks_queued.max(upto);
            j.updated_at = chrono::Utc::now();
        }
        Ok(())
    }
    async fn task_page(
        &self,
        job: JobId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<(Vec<Task>, Option<u32>), StoreError> {
        let t = self.tasks.lock().map_err(poisoned)?;
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut page: Vec<Task> = t
            .range((job.0, from)..=(job.0, u32::MAX))
            .take(limit as usize + 1)
            .map(|(_, v)| v.clone())
            .collect();
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let next = if more { page.last().map(|t| t.index) } else { None };
        Ok((page, next))
    }
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.jobs.lock().map_err(poisoned)?.get(&id).cloned())
    }
    async fn list_jobs(&self, asset: AssetId) -> Result<Vec<Job>, StoreError> {
        let mut v: Vec<Job> = self
            .jobs
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|j| j.asset_id == asset)
            .cloned()
            .collect();
        v.sort_by_key(|j| std::cmp::Reverse(j.created_at));
        Ok(v)
    }
    async fn get_tasks(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        Ok(self
            .tasks
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|t| t.job_id == job)
            .cloned()
            .collect())
    }
    async fn transition_job(
        &self,
        job: JobId,
        from: &[JobState],
        to: JobState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut m = self.jobs.lock().map_err(poisoned)?;
        match m.get_mut(&job) {
            Some(j) if from.contains(&j.state) => {
                j.state = to;
                if let Some(e) = error {
                    j.error = Some(e.to_string());
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn start_task(&self, job: JobId, index: u32) -> Result<Option<Task>, StoreError> {
        let mut m = self.tasks.lock().map_err(poisoned)?;
        let Some(t) = m.get_mut(&(job.0, index)) else {
            return Ok(None);
        };
        let before = t.clone();
        if !matches!(t.state, TaskState::Finished | TaskState::Canceled) {
            t.state = TaskState::Processing;
            t.attempts += 1;
        }
        Ok(Some(before))
    }
    async fn finish_task(&self, job: JobId, index: u32, outputs: &[TrackOutput]) -> Result<Option<u32>, StoreError> {
        let mut m = self.tasks.lock().map_err(poisoned)?;
        let Some(t) = m.get_mut(&(job.0, index)) else {
            return Ok(None);
        };
        if t.state == TaskState::Finished {
            return Ok(None);
        }
        t.state = TaskState::Finished;
        t.outputs = outputs.to_vec();
        let mut jobs = self.jobs.lock().map_err(poisoned)?;
        let j = jobs
            .get_mut(&job)
            .ok_or_else(|| StoreError::Backend("job vanished".into()))?;
        j.tasks_done += 1;
        j.updated_at = chrono::Utc::now();
        Ok(Some(j.tasks_done))
    }
    async fn settle_task(&self, job: JobId, index: u32, state: TaskState, reason: &str) -> Result<(), StoreError> {
        let mut m = self.tasks.lock().map_err(poisoned)?;
        if let Some(t) = m.get_mut(&(job.0, index)) {
            if t.state != TaskState::Finished {
                t.state = state;
                t.error = Some(reason.to_string());
            }
        }
        Ok(())
    }
    async fn delete_jobs_of(&self, asset: AssetId) -> Result<(), StoreError> {
        let ids: Vec<JobId> = self
            .jobs
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|j| j.asset_id == asset)
            .map(|j| j.id)
            .collect();
        self.jobs.lock().map_err(poisoned)?.retain(|id, _| !ids.contains(id));
        self.tasks
            .lock()
            .map_err(poisoned)?
            .retain(|(j, _), _| !ids.iter().any(|id| id.0 == *j));
        Ok(())
    }
    async fn put_preset(&self, preset: &Preset) -> Result<(), StoreError> {
        self.presets
            .lock()
            .map_err(poisoned)?
            .insert(preset.name.clone(), preset.clone());
        Ok(())
    }
    async fn get_preset(&self, name: &str) -> Result<Option<Preset>, StoreError> {
        Ok(self.presets.lock().map_err(poisoned)?.get(name).cloned())
    }
    async fn list_presets(&self) -> Result<Vec<Preset>, StoreError> {
        Ok(self.presets.lock().map_err(poisoned)?.values().cloned().collect())
    }
}

/// Collects sent task messages.
#[derive(Default)]
pub struct MemoryTaskQueue {
    pub sent: Mutex<Vec<TaskMessage>>,
}

#[async_trait]
impl TaskQueue for MemoryTaskQueue {
    async fn send(&self, messages: &[TaskMessage]) -> Result<(), StoreError> {
        self.sent.lock().map_err(poisoned)?.extend_from_slice(messages);
        Ok(())
    }
}

use crate::delivery::{DeliveryStore, Filter, Locator, LocatorId};

/// Locators and filters in memory.
#[derive(Default)]
pub struct MemoryDeliveryStore {
    locators: Mutex<HashMap<LocatorId, Locator>>,
    filters: Mutex<BTreeMap<(Option<uuid::Uuid>, String), Filter>>,
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn put_locator(&self, locator: &Locator) -> Result<(), StoreError> {
        self.locators
            .lock()
            .map_err(poisoned)?
            .insert(locator.id, locator.clone());
        Ok(())
    }
    async fn get_locator(&self, id: LocatorId) -> Result<Option<Locator>, StoreError> {
        Ok(self.locators.lock().map_err(poisoned)?.get(&id).cloned())
    }
    async fn delete_locator(&self, id: LocatorId) -> Result<(), StoreError> {
        self.locators.lock().map_err(poisoned)?.remove(&id);
        Ok(())
    }
    async fn list_locators(&self, asset: AssetId) -> Result<Vec<Locator>, StoreError> {
        let mut v: Vec<Locator> = self
            .locators
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|l| l.asset_id == asset)
            .cloned()
            .collect();
        v.sort_by_key(|l| std::cmp::Reverse(l.created_at));
        Ok(v)
    }
    async fn put_filter(&self, filter: &Filter) -> Result<(), StoreError> {
        self.filters
            .lock()
            .map_err(poisoned)?
            .insert((filter.asset_id.map(|a| a.0), filter.name.clone()), filter.clone());
        Ok(())
    }
    async fn get_filter(&self, asset: Option<AssetId>, name: &str) -> Result<Option<Filter>, StoreError> {
        Ok(self
            .filters
            .lock()
            .map_err(poisoned)?
            .get(&(asset.map(|a| a.0), name.to_string()))
            .cloned())
    }
    async fn list_filters(&self, asset: Option<AssetId>) -> Result<Vec<Filter>, StoreError> {
        let scope = asset.map(|a| a.0);
        Ok(self
            .filters
            .lock()
            .map_err(poisoned)?
            .iter()
            .filter(|((a, _), _)| *a == scope)
            .map(|(_, f)| f.clone())
            .collect())
    }
    async fn delete_filter(&self, asset: Option<AssetId>, name: &str) -> Result<(), StoreError> {
        self.filters
            .lock()
            .map_err(poisoned)?
            .remove(&(asset.map(|a| a.0), name.to_string()));
        Ok(())
    }
}

use crate::ports::{SearchStore, TermEntry};

/// The cross-asset term index in memory.
#[derive(Default)]
pub struct MemorySearchStore {
    terms: Mutex<BTreeMap<String, BTreeMap<AssetId, TermEntry>>>,
}

#[async_trait]
impl SearchStore for MemorySearchStore {
    async fn put_terms(&self, asset: AssetId, terms: &[TermEntry]) -> Result<(), StoreError> {
        let mut all = self.terms.lock().map_err(poisoned)?;
        for by_asset in all.values_mut() {
            by_asset.remove(&asset);
        }
        for t in terms {
            all.entry(t.term.clone()).or_default().insert(asset, t.clone());
        }
        Ok(())
    }

    async fn find_term(&self, term: &str, limit: usize) -> Result<Vec<(AssetId, TermEntry)>, StoreError> {
        let all = self.terms.lock().map_err(poisoned)?;
        Ok(all
            .get(term)
            .map(|m| m.iter().take(limit).map(|(a, t)| (*a, t.clone())).collect())
            .unwrap_or_default())
    }
}

use crate::protection::{ContentKey, KeyId, KeyPolicy, KeyService, KeyStore};

/// Content keys and key policies in memory.
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<uuid::Uuid, ContentKey>>,
    policies: Mutex<BTreeMap<String, KeyPolicy>>,
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn put_content_key(&self, key: &ContentKey) -> Result<(), StoreError> {
        self.keys.lock().map_err(poisoned)?.insert(key.kid.0, key.clone());
        Ok(())
    }
    async fn get_content_key(&self, kid: KeyId) -> Result<Option<ContentKey>, StoreError> {
        Ok(self.keys.lock().map_err(poisoned)?.get(&kid.0).cloned())
    }
    async fn list_content_keys(&self, asset: AssetId) -> Result<Vec<ContentKey>, StoreError> {
        let m = self.keys.lock().map_err(poisoned)?;
        Ok(m.values().filter(|k| k.asset_id == asset).cloned().collect())
    }
    async fn delete_content_key(&self, kid: KeyId) -> Result<(), StoreError> {
        self.keys.lock().map_err(poisoned)?.remove(&kid.0);
        Ok(())
    }
    async fn put_key_policy(&self, policy: &KeyPolicy) -> Result<(), StoreError> {
        self.policies
            .lock()
            .map_err(poisoned)?
            .insert(policy.name.clone(), policy.clone());
        Ok(())
    }
    async fn get_key_policy(&self, name: &str) -> Result<Option<KeyPolicy>, StoreError> {
        Ok(self.policies.lock().map_err(poisoned)?.get(name).cloned())
    }
    async fn list_key_policies(&self) -> Result<Vec<KeyPolicy>, StoreError> {
        Ok(self.policies.lock().map_err(poisoned)?.values().cloned().collect())
    }
    async fn delete_key_policy(&self, name: &str) -> Result<(), StoreError> {
        self.policies.lock().map_err(poisoned)?.remove(name);
        Ok(())
    }
}

/// A key service in memory standing in for KMS: secrets are wrapped with AES-256-CTR under a random key of the
/// instance, bound to their encryption context by a SHA-256 check (a wrapped secret does not unwrap under another
/// context or another instance), as KMS binds them.
pub struct MemoryKeyService {
    master: zeroize::Zeroizing<[u8; 32]>,
}

impl Default for MemoryKeyService {
    fn default() -> Self {
        let mut master = zeroize::Zeroizing::new([0u8; 32]);
        // A failing random source leaves the fake unusable, not insecure: every unwrap fails its check.
        let _ = openssl::rand::rand_bytes(master.as_mut());
        MemoryKeyService { master }
    }
}

impl MemoryKeyService {
    fn context_digest(&self, context: &[(&str, String)]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.master.as_ref());
        for (k, v) in context {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        h.finalize().into()
    }

    fn ctr(&self, nonce: &[u8], data: &[u8]) -> Result<Vec<u8>, StoreError> {
        openssl::symm::encrypt(
            openssl::symm::Cipher::aes_256_ctr(),
            self.master.as_ref(),
            Some(nonce),
            data,
        )
        .map_err(|e| StoreError::Backend(format!("memory key service: {e}")))
    }
}

#[async_trait]
impl KeyService for MemoryKeyService {
    async fn generate(
        &self,
        len: usize,
        context: &[(&str, String)],
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, Vec<u8>), StoreError> {
        let mut plain = zeroize::Zeroizing::new(vec![0u8; len]);
        openssl::rand::rand_bytes(plain.as_mut()).map_err(|e| StoreError::Backend(e.to_string()))?;
        let wrapped = self.wrap(&plain, context).await?;
        Ok((plain, wrapped))
    }
    async fn wrap(&self, plaintext: &[u8], context: &[(&str, String)]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend(self.ctr(&nonce, plaintext)?);
        out.extend_from_slice(&self.context_digest(context)[..16]);
        Ok(out)
    }
    async fn unwrap(
        &self,
        wrapped: &[u8],
        context: &[(&str, String)],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        if wrapped.len() < 32 || wrapped[wrapped.len() - 16..] != self.context_digest(context)[..16] {
            return Err(StoreError::Backend(
                "memory key service: wrong context or foreign ciphertext".into(),
            ));
        }
        let (nonce, body) = wrapped[..wrapped.len() - 16].split_at(16);
        Ok(zeroize::Zeroizing::new(self.ctr(nonce, body)?))
    }
}
