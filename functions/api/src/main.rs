//! Management API Lambda (API Gateway HTTP API → lambda_http): builds the context once, routes every request
//! through `vod_app::api`.
use lambda_http::{run, service_fn, Error, Request};
use vod_app::{api, telemetry, AppContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = AppContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(api::handle(ctx, req).await)
    }))
    .await
}
