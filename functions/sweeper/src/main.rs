//! Sweeper Lambda: on its EventBridge schedule, ends stalled jobs and uploads whose probe never completed; on its
//! SQS queue, makes deferred CDN invalidations — both through `vod_app::sweeper`.
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tracing::Instrument;
use vod_app::{sweeper, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = AppContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // An SQS batch has `Records`; a scheduled event does not.
        if event.payload.get("Records").is_some() {
            let span = tracing::info_span!("deferred", request_id = %event.context.request_id);
            let batch: SqsEvent = serde_json::from_value(event.payload)?;
            let resp = sweeper::handle_deferred(ctx, batch).instrument(span).await;
            return Ok::<serde_json::Value, Error>(serde_json::to_value(resp)?);
        }
        let span = tracing::info_span!("sweep", request_id = %event.context.request_id);
        let report = sweeper::sweep(ctx).instrument(span).await?;
        Ok::<serde_json::Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
