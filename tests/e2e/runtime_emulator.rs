//! The real `ingest` function binary under a Lambda Runtime API emulator (`cargo lambda watch`), fed the SQS event
//! that an upload into the emulated bucket produced.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use vod_domain::{AssetState, AssetStore};
use vod_local::provision::provision;
use vod_local::stack::emulator_sdk_config;
use vod_local::Template;

use crate::support::*;

/// `cargo-lambda` from PATH or from the tools venv that .ci/run installs.
fn cargo_lambda_path() -> String {
    let venv: PathBuf = root().join(".build/tools-venv/bin");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", venv.display())
}

struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        // cargo lambda runs the function through `cargo run`: stop the whole process group.
        let _ = Command::new("kill").arg("--").arg(format!("-{}", self.0.id())).status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_binary_runs_under_the_lambda_runtime_emulator() {
    let opts = options("lambda-rt");
    let spec = Template::load(&root().join("template.yaml"))
        .and_then(|t| t.resolve(&opts.params, &opts.region))
        .expect("template resolves");
    let sdk = emulator_sdk_config(&opts.endpoint, &opts.region).await;
    // Resources only: no local host, so the notification waits in the queue for the real binary.
    let urls = provision(&sdk, &spec).await.expect("provision");
    let upload_bucket = spec
        .buckets
        .iter()
        .find(|b| b.logical_id == "UploadBucket")
        .expect("bucket")
        .name
        .clone();

    let dir = scratch("lambda_rt");
    let file = h264_aac_mp4(&dir, "rt.mp4", "320x180", 25, 2);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.put_object()
        .bucket(&upload_bucket)
        .key("incoming/rt clip.mp4")
        .body(ByteStream::from(std::fs::read(&file).expect("read")))
        .send()
        .await
        .expect("put");

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = &urls["IngestQueue"];
    let start = Instant::now();
    let messages = loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let m = out.messages.unwrap_or_default();
        if !m.is_empty() {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no S3 notification arrived");
    };
    let queue = spec.queue("IngestQueue").expect("queue");
    let event = vod_local::host::sqs_event_json(&messages, &spec.queue_arn(&queue.name), &spec.region);

    // The function's configuration as the template sets it, pointed at the emulator.
    let function = spec.function("IngestFunction").expect("function");
    let mut env = String::new();
    for (k, v) in &function.environment {
        env.push_str(&format!("{k}={v}\n"));
    }
    env.push_str(&format!(
        "AWS_ENDPOINT_URL={}\nAWS_REGION={}\nAWS_ACCESS_KEY_ID=local\nAWS_SECRET_ACCESS_KEY=local\n",
        opts.endpoint, opts.region
    ));
    let env_file = dir.join("ingest.env");
    std::fs::write(&env_file, env).expect("env file");

    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::fs::File::create(dir.join("cargo-lambda.log")).expect("log");
    let child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("cargo");
        // Variables that cargo sets for this test crate would make the nested build redo build scripts; the
        // caller's build settings (CARGO_PROFILE_*, CARGO_INCREMENTAL, ...) stay so that it reuses the artifacts.
        const PER_CRATE: [&str; 7] = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ];
        for (k, _) in std::env::vars() {
            if PER_CRATE.iter().any(|p| k.starts_with(p))
                || k == "CARGO"
                || k.starts_with("NEXTEST")
                || k == "RUST_TEST_THREADS"
            {
                cmd.env_remove(k);
            }
        }
        cmd.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .arg("--env-file")
        .arg(&env_file)
        .current_dir(root())
        .env("PATH", cargo_lambda_path())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("cargo lambda watch starts (pip install cargo-lambda)")
    };
    let _emulator = Emulator(child);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/ingest/invocations");
    let start = Instant::now();
    let response: Value = loop {
        match http.post(&url).json(&event).send().await {
            Ok(r) => {
                assert!(
                    r.status().is_success(),
                    "invoke answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
                break r.json().await.expect("json response");
            }
            Err(e) if e.is_connect() && start.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            Err(e) => panic!("invoke failed: {e}; see {}", dir.join("cargo-lambda.log").display()),
        }
    };
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");

    let store = vod_aws::DynamoAssetStore::new(aws_sdk_dynamodb::Client::new(&sdk), &spec.tables[0].name);
    let page = store.list(10, None).await.expect("list");
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    let asset = &page.items[0];
    assert_eq!(asset.state, AssetState::Probed, "{asset:?}");
    assert_eq!(
        asset.source.as_ref().map(|s| s.key.as_str()),
        Some("incoming/rt clip.mp4")
    );
    let media = asset.media.as_ref().expect("media");
    assert_eq!((media.video[0].width, media.video[0].height), (320, 180));

    // A malformed message gets reported as a batch item failure by the real binary too.
    let bad = serde_json::json!({"Records": [{"messageId": "bad-1", "body": "{}", "eventSource": "aws:sqs"}]});
    let r: Value = http
        .post(&url)
        .json(&bad)
        .send()
        .await
        .expect("invoke")
        .json()
        .await
        .expect("json");
    assert_eq!(r["batchItemFailures"][0]["itemIdentifier"], "bad-1");
}
