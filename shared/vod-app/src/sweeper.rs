//! The sweeper, run on a schedule: ends what nothing else will — jobs that stopped progressing (their tasks'
//! messages lost, or tasks that died without a report) and uploads whose probe never completed — each with a
//! reason, publishing the job events. It reads sparse indexes only, so a run costs what is in flight, not the
//! catalog.
use serde::Serialize;
use tracing::info;
use vod_domain::DomainError;

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
