//! Packager Lambda (API Gateway HTTP API → lambda_http, behind CloudFront): builds the context once, answers every
//! streaming request through `vod_app::stream`.
use lambda_http::{run, service_fn, Error, Request};
use vod_app::stream::{self, StreamContext};
use vod_app::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = StreamContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(stream::handle(ctx, req).await)
    }))
    .await
}
