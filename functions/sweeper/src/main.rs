//! Sweeper Lambda (an EventBridge schedule): ends stalled jobs and uploads whose probe never completed, through
//! `vod_app::sweeper`.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tracing::Instrument;
use vod_app::{sweeper, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = AppContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let span = tracing::info_span!("sweep", request_id = %event.context.request_id);
        let report = sweeper::sweep(ctx).instrument(span).await?;
        Ok::<serde_json::Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
