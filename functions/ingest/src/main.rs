//! Ingest Lambda (SQS event source of the ingest queue, fed by the upload bucket's ObjectCreated notifications):
//! records and probes uploads through `vod_app::ingest`, reporting partial batch failures. Besides the containers
//! `vod-media` reads itself, it probes the broadcast and legacy ones through libavformat (`vod-avprobe`; the function
//! carries the MediaLibrariesLayer).
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vod_app::{ingest, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let mut ctx = AppContext::from_env().await?;
    ctx.assets = ctx.assets.clone().with_formats(vod_avprobe::FORMATS);
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(ingest::handle_batch(ctx, event.payload).await)
    }))
    .await
}
