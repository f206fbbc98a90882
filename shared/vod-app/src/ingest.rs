//! Ingest handler: an SQS batch of S3 ObjectCreated notifications → asset records and probe results, reporting
//! per-message failures so that only failed messages are retried (and end in the dead-letter queue).
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::{error, info, info_span, Instrument};
use vod_domain::ingest::parse_notification;
use vod_domain::service::IngestOutcome;

use crate::AppContext;

/// Handles one batch. Media problems put the asset in Error (the message succeeds); malformed messages and
/// storage failures fail the message so that SQS redelivers it.
pub async fn handle_batch(ctx: &AppContext, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = info_span!("message", message_id = %id);
        let ok = async {
            let Some(body) = record.body.as_deref() else {
                error!("message has no body");
                return false;
            };
            let objects = match parse_notification(body) {
                Ok(o) => o,
                Err(e) => {
                    error!(error = %e, "unreadable notification");
                    return false;
                }
            };
            for obj in &objects {
                match ctx.assets.ingest(obj).await {
                    Ok(outcome) => {
                        log_outcome(&outcome);
                        // A source that failed its probe gets its job too, in Error with the reason (as AMS did).
                        if let (IngestOutcome::Probed(id) | IngestOutcome::Failed(id, _), Some(preset)) =
                            (&outcome, &ctx.config.auto_encode_preset)
                        {
                            match ctx.jobs.create_job(*id, preset).await {
                                Ok(view) => info!(asset_id = %id, job_id = %view.job.id, "encoding job started"),
                                Err(e) => error!(asset_id = %id, error = %e, "could not start the encoding job"),
                            }
                        }
                    }
                    Err(e) => {
                        error!(error = %e, key = %obj.key, "ingest failed; message will be retried");
                        return false;
                    }
                }
            }
            true
        }
        .instrument(span)
        .await;
        if !ok {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}

fn log_outcome(outcome: &IngestOutcome) {
    match outcome {
        IngestOutcome::Probed(id) => info!(asset_id = %id, "probed"),
        IngestOutcome::Failed(id, reason) => info!(asset_id = %id, %reason, "source rejected"),
        IngestOutcome::Duplicate(id) => info!(asset_id = %id, "duplicate notification ignored"),
        IngestOutcome::Skipped(why) => info!(%why, "skipped"),
    }
}
