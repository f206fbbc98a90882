//! Jobs, tasks and presets in the DynamoDB table: a job and its tasks share the partition `JOB#<id>`; jobs are
//! listed per asset through GSI1; finishing a task and counting it on the job is one transaction.
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use vod_domain::job::{Job, JobId, JobState, Preset, Task, TaskState, TrackOutput};
use vod_domain::{AssetId, JobStore, StoreError};

use crate::sdk_error;

/// Task items written at once by `add_tasks`.
const TASK_WRITES: usize = 16;

pub struct DynamoJobStore {
    client: Client,
    table: String,
}

fn backend(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(sdk_error(&e))
}
fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn job_pk(id: JobId) -> String {
    format!("JOB#{id}")
}
fn task_sk(index: u32) -> String {
    format!("TASK#{index:06}")
}
fn job_state(st: JobState) -> AttributeValue {
    s(st.as_str())
}
fn task_state(st: TaskState) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(st).map_err(corrupt)
}
const KEYS: [&str; 6] = ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"];
/// GSI2 partition of jobs not in a final state (the attribute is removed when a job ends).
const ACTIVE_INDEX_PK: &str = "ACTIVEJOBS";

fn strip(mut item: HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    for k in KEYS {
        item.remove(k);
    }
    item
}

fn is_condition_failure<E: std::error::Error + 'static>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool {
    sdk_error(e).contains("ConditionalCheckFailed") || format!("{e:?}").contains("ConditionalCheckFailed")
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoJobStore {
            client,
            table: table.into(),
        }
    }

    async fn query_pk(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        crate::table::query_partition(&self.client, &self.table, pk, sk_prefix).await
    }

    async fn query_gsi(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        crate::table::query_gsi1(&self.client, &self.table, pk).await
    }

    async fn get_task(&self, job: JobId, index: u32) -> Result<Option<Task>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s(task_sk(index)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .transpose()
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        // Its first tasks before the job item: a job is only visible with the tasks it has queued.
        self.add_tasks(job.id, tasks).await?;
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(job).map_err(corrupt)?;
        item.insert("PK".into(), s(job_pk(job.id)));
        item.insert("SK".into(), s("JOB"));
        item.insert("GSI1PK".into(), s(format!("ASSETJOBS#{}", job.asset_id)));
        item.insert(
            "GSI1SK".into(),
            s(format!("{}#{}", job.created_at.to_rfc3339(), job.id)),
        );
        if !job.state.is_final() {
            item.insert("GSI2PK".into(), s(ACTIVE_INDEX_PK));
            item.insert("GSI2SK".into(), s(job.id.to_string()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn add_tasks(&self, job: JobId, tasks: &[Task]) -> Result<(), StoreError> {
        use futures::{StreamExt, TryStreamExt};
        // One conditional put per task, TASK_WRITES in flight: a task that exists (a step run twice, a task
        // already running or finished) is never overwritten. BatchWriteItem cannot carry the condition.
        let mut puts = Vec::with_capacity(tasks.len());
        for t in tasks {
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(t).map_err(corrupt)?;
            item.insert("PK".into(), s(job_pk(job)));
            item.insert("SK".into(), s(task_sk(t.index)));
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)");
            puts.push(async move {
                match put.send().await {
                    Ok(_) => Ok(()),
                    Err(e) if is_condition_failure(&e) => Ok(()),
                    Err(e) => Err(backend(e)),
                }
            });
        }
        futures::stream::iter(puts)
            .buffer_unordered(TASK_WRITES)
            .try_collect::<()>()
            .await
    }

    async fn mark_queued(&self, job: JobId, upto: u32) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s("JOB"))
            .update_expression("SET tasks_queued = :n, updated_at = :now")
            .condition_expression("attribute_exists(PK) AND (attribute_not_exists(tasks_queued) OR tasks_queued < :n)")
            .expression_attribute_values(":n", AttributeValue::N(upto.to_string()))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn task_page(
        &self,
        job: JobId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<(Vec<Task>, Option<u32>), StoreError> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(job_pk(job)))
            .expression_attribute_values(":lo", s(task_sk(from)))
            .expression_attribute_values(":hi", s("TASK#999999"))
            .limit(limit.saturating_add(1).min(1001) as i32)
            .send()
            .await
            .map_err(backend)?;
        let mut tasks: Vec<Task> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        // More: an item past the page, or a page cut short by DynamoDB's 1 MB limit.
        let more = tasks.len() > limit as usize || out.last_evaluated_key.is_some();
        tasks.truncate(limit as usize);
        let next = if more { tasks.last().map(|t| t.index) } else { None };
        Ok((tasks, next))
    }

    async fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        crate::table::query_gsi2(&self.client, &self.table, ACTIVE_INDEX_PK)
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .collect()
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(id)))
            .key("SK", s("JOB"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .transpose()
    }

    async fn list_jobs(&self, asset: AssetId) -> Result<Vec<Job>, StoreError> {
        self.query_gsi(&format!("ASSETJOBS#{asset}"))
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .collect()
    }

    async fn get_tasks(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        self.query_pk(&job_pk(job), Some("TASK#"))
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .collect()
    }

    async fn transition_job(
        &self,
        job: JobId,
        from: &[JobState],
        to: JobState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":f{i}")).collect();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s("JOB"))
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":to", job_state(to))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .condition_expression(format!("attribute_exists(PK) AND #st IN ({})", placeholders.join(", ")));
        for (p, st) in placeholders.iter().zip(from) {
            req = req.expression_attribute_values(p, job_state(*st));
        }
        // A job that ends leaves the sparse index of active jobs.
        let leave = if to.is_final() { " REMOVE GSI2PK, GSI2SK" } else { "" };
        req = match error {
            Some(e) => req
                .update_expression(format!("SET #st = :to, updated_at = :now, #err = :err{leave}"))
                .expression_attribute_names("#err", "error")
                .expression_attribute_values(":err", s(e)),
            None => req.update_expression(format!("SET #st = :to, updated_at = :now{leave}")),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn start_task(&self, job: JobId, index: u32) -> Result<Option<Task>, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s(task_sk(index)))
            .update_expression("SET #st = :processing, updated_at = :now ADD attempts :one")
            .condition_expression("attribute_exists(PK) AND NOT (#st IN (:finished, :canceled))")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":processing", task_state(TaskState::Processing)?)
            .expression_attribute_values(":finished", task_state(TaskState::Finished)?)
            .expression_attribute_values(":canceled", task_state(TaskState::Canceled)?)
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => out
                .attributes
                .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
                .transpose(),
            Err(e) if is_condition_failure(&e) => self.get_task(job, index).await,
            Err(e) => Err(backend(e)),
        }
    }

    async fn finish_task(&self, job: JobId, index: u32, outputs: &[TrackOutput]) -> Result<Option<u32>, StoreError> {
        let task_update = Update::builder()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s(task_sk(index)))
            .update_expression("SET #st = :finished, outputs = :outputs, updated_at = :now")
            .condition_expression("attribute_exists(PK) AND #st <> :finished")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":finished", task_state(TaskState::Finished)?)
            .expression_attribute_values(":outputs", serde_dynamo::to_attribute_value(outputs).map_err(corrupt)?)
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .build()
            .map_err(backend)?;
        let job_update = Update::builder()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s("JOB"))
            .update_expression("ADD tasks_done :one SET updated_at = :now")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .build()
            .map_err(backend)?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(task_update).build())
            .transact_items(TransactWriteItem::builder().update(job_update).build())
            .send()
            .await;
        match res {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => return Ok(None),
            Err(e) => return Err(backend(e)),
        }
        let j = self
            .get_job(job)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("job {job} vanished")))?;
        Ok(Some(j.tasks_done))
    }

    async fn settle_task(&self, job: JobId, index: u32, state: TaskState, reason: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(job_pk(job)))
            .key("SK", s(task_sk(index)))
            .update_expression("SET #st = :st, #err = :err, updated_at = :now")
            .condition_expression("attribute_exists(PK) AND #st <> :finished")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#err", "error")
            .expression_attribute_values(":st", task_state(state)?)
            .expression_attribute_values(":finished", task_state(TaskState::Finished)?)
            .expression_attribute_values(":err", s(reason))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_jobs_of(&self, asset: AssetId) -> Result<(), StoreError> {
        for job in self.query_gsi(&format!("ASSETJOBS#{asset}")).await? {
            let Some(pk) = job.get("PK").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            crate::table::delete_partition(&self.client, &self.table, pk, "JOB").await?;
        }
        Ok(())
    }

    async fn put_preset(&self, preset: &Preset) -> Result<(), StoreError> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(preset).map_err(corrupt)?;
        item.insert("PK".into(), s(format!("PRESET#{}", preset.name)));
        item.insert("SK".into(), s("PRESET"));
        item.insert("GSI1PK".into(), s("PRESETS"));
        item.insert("GSI1SK".into(), s(preset.name.clone()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_preset(&self, name: &str) -> Result<Option<Preset>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(format!("PRESET#{name}")))
            .key("SK", s("PRESET"))
            .send()
            .await
            .map_err(backend)?;
        out.item
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .transpose()
    }

    async fn list_presets(&self) -> Result<Vec<Preset>, StoreError> {
        let mut v: Vec<Preset> = self
            .query_gsi("PRESETS")
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip(i)).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
}
