//! The sweeper, run on a schedule: ends what nothing else will — jobs that stopped progressing (their tasks'
//! messages lost, or tasks that died without a report) and uploads whose probe never completed — each with a
//! reason, publishing the job events. It reads sparse indexes only, so a run costs what is in flight, not the
//! catalog. It also makes the deferred CDN invalidations when their queue delivers them.
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Serialize;
use tracing::{error, info, info_span, Instrument};
use vod_domain::{DeferredInvalidation, DomainError};

use crate::AppContext;

/// What one run ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs put in Error (or Canceled, if they were being cancelled).
    pub jobs_ended: Vec<String>,
    /// Assets put in Error because their probe did not complete in time.
    pub uploads_expired: u32,
}

pub async fn sweep(ctx: &AppContext) -> Result<SweepReport, DomainError> {
    let jobs_ended: Vec<String> = ctx
        .jobs
        .sweep(ctx.config.job_stall)
        .await?
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    let uploads_expired = ctx.assets.sweep_uploads().await?;
    info!(jobs_ended = jobs_ended.len(), uploads_expired, "sweep done");
    Ok(SweepReport {
        jobs_ended,
        uploads_expired,
    })
}

/// Makes each deferred invalidation of the batch (the CDN paths of unpublished or changed locators, asked again once
/// the packager's caches have expired). A message that fails is retried by SQS, then kept in its dead-letter queue.
pub async fn handle_deferred(ctx: &AppContext, event: SqsEvent) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let ok = async {
            let Some(deferred) = record
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<DeferredInvalidation>(b).ok())
            else {
                error!("not a deferred invalidation");
                return false;
            };
            match ctx.delivery.invalidate_paths(&deferred.paths).await {
                Ok(()) => {
                    info!(paths = deferred.paths.len(), "deferred CDN invalidation made");
                    true
                }
                Err(e) => {
                    error!(error = %e, "deferred CDN invalidation failed; it will be retried");
                    false
                }
            }
        }
        .instrument(info_span!("message", message_id = %id))
        .await;
        if !ok {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            resp.batch_item_failures.push(f);
        }
    }
    resp
}
