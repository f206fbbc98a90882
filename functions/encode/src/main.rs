//! Encoder Lambda (SQS event source of the encode queue, one task per message): runs the task through
//! `vod_worker`, reporting a failed message for retry.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vod_runtime::telemetry;
use vod_worker::{handle_batch, WorkerContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = WorkerContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(handle_batch(ctx, event.payload).await)
    }))
    .await
}
