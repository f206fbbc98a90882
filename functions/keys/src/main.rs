//! Key delivery Lambda (API Gateway HTTP API → lambda_http, behind CloudFront, never cached): releases content keys
//! (raw AES-128 keys for HLS, W3C Clear Key licences) as their key policies allow, through `vod_app::keys`.
use lambda_http::{run, service_fn, Error, Request};
use vod_app::keys::{self, KeysContext};
use vod_app::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    let ctx = KeysContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(keys::handle(ctx, req).await)
    }))
    .await
}
