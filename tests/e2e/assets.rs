//! Assets and ingest end to end: uploads through the API (single and multipart) and straight into the bucket,
//! probing, duplicate notifications, hostile files, malformed requests, dead-letter queue.
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

fn s3(stack: &vod_local::LocalStack) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn queue_depth(stack: &vod_local::LocalStack, logical: &str) -> (u64, u64) {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let out = sqs
        .get_queue_attributes()
        .queue_url(&stack.queue_urls[logical])
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes");
    let attrs = out.attributes.unwrap_or_default();
    let get = |k: aws_sdk_sqs::types::QueueAttributeName| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Waits until the ingest queue is drained and the function ran at least `min_invocations` times.
async fn wait_ingest_idle(stack: &vod_local::LocalStack, min_invocations: u64) {
    let f = &stack.host.functions["IngestFunction"];
    let start = Instant::now();
    loop {
        let n = f.invocations.load(std::sync::atomic::Ordering::Relaxed);
        if n >= min_invocations && queue_depth(stack, "IngestQueue").await == (0, 0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ingest queue did not drain ({n} invocations)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_upload_is_probed_listed_and_deleted() {
    let stack = stack("api-upload").await;
    let api = Api::new(&stack);
    let dir = scratch("api_upload");
    let file = h264_aac_mp4(&dir, "clip one.mp4", "320x240", 25, 5);
    let (w, h, dur, fps) = ffprobe_video(&file);

    let created = api.upload(&file).await.expect("upload");
    assert_eq!(created["state"], "Created");
    let id = created["id"].as_str().expect("id").to_string();
    let asset = api.wait_final(&id).await;
    assert_eq!(asset["state"], "Probed", "{asset}");
    let media = &asset["media"];
    assert_eq!(media["container"], "mp4");
    let v = &media["video"][0];
    assert_eq!(v["codec"], "h264");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(w), Some(h)));
    assert!((v["frame_rate"].as_f64().unwrap_or(0.0) - fps).abs() < 0.01);
    let frame = 1.0 / fps;
    assert!(
        (media["duration_secs"].as_f64().unwrap_or(0.0) - dur).abs() <= frame,
        "duration {media} vs ffprobe {dur}"
    );
    assert_eq!(v["frame_count"], 125);
    let a = &media["audio"][0];
    assert_eq!(
        (a["codec"].as_str(), a["channels"].as_u64(), a["sample_rate"].as_u64()),
        (Some("aac"), Some(2), Some(48000))
    );
    assert!(media["bitrate"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        asset["source"]["size"].as_u64(),
        Some(std::fs::metadata(&file).expect("meta").len())
    );

    let listed = api.list_all().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    let key = asset["source"]["key"].as_str().expect("key").to_string();
    let bucket = asset["source"]["bucket"].as_str().expect("bucket").to_string();
    let (status, _) = api.call(Method::DELETE, &format!("/assets/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        s3(&stack).head_object().bucket(&bucket).key(&key).send().await.is_err(),
        "source object deleted"
    );
    assert!(api.list_all().await.is_empty());
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_upload_creates_one_asset_even_with_duplicate_notifications() {
    let stack = stack("direct").await;
    let api = Api::new(&stack);
    let dir = scratch("direct");
    let file = h264_aac_mp4(&dir, "direct.mp4", "426x240", 30, 3);
    let bucket = stack.bucket("UploadBucket").expect("bucket").to_string();
    let key = "drop/My Clip (1)+final.mp4";
    s3(&stack)
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(std::fs::read(&file).expect("read")))
        .send()
        .await
        .expect("put");
    let assets = api.wait_assets(1).await;
    assert_eq!(assets.len(), 1);
    let asset = &assets[0];
    assert_eq!(asset["state"], "Probed", "{asset}");
    assert_eq!(asset["name"], "My Clip (1)+final.mp4");
    assert_eq!(asset["source"]["key"], key);
    assert_eq!(asset["media"]["video"][0]["width"], 426);
    wait_ingest_idle(&stack, 1).await;
    let version = asset["version"].clone();

    // The same object announced twice more, form-encoded as S3 does, one record lacking optional fields.
    let encoded = "drop/My+Clip+%281%29%2Bfinal.mp4";
    let full = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")}, "object": {"key": encoded, "size": 1}}}]});
    let sparse = json!({"Records": [{"s3": {"bucket": {"name": bucket}, "object": {"key": encoded}}}]});
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let before = stack.host.functions["IngestFunction"]
        .invocations
        .load(std::sync::atomic::Ordering::Relaxed);
    for body in [full, sparse] {
        sqs.send_message()
            .queue_url(&stack.queue_urls["IngestQueue"])
            .message_body(body.to_string())
            .send()
            .await
            .expect("send");
    }
    wait_ingest_idle(&stack, before + 1).await;
    let after = api.list_all().await;
    assert_eq!(after.len(), 1, "still one asset: {after:?}");
    assert_eq!(after[0]["version"], version, "duplicates changed nothing");
    let (dlq, _) = queue_depth(&stack, "IngestDeadLetterQueue").await;
    assert_eq!(dlq, 0);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_truncated_empty_and_unsupported_uploads_end_in_error() {
    let stack = stack("bad-media").await;
    let api = Api::new(&stack);
    let dir = scratch("bad_media");
    let good = h264_aac_mp4(&dir, "good.mp4", "320x240", 25, 2);
    let bytes = std::fs::read(&good).expect("read");
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").expect("write");
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "this is a text file, not a video\n".repeat(50)).expect("write");
    // ftyp, then a box claiming 10 GB in a 1 KB file.
    let mut claim = Vec::new();
    claim.extend_from_slice(&[0, 0, 0, 16]);
    claim.extend_from_slice(b"ftypisom\0\0\x02\0");
    claim.extend_from_slice(&[0, 0, 0, 1]);
    claim.extend_from_slice(b"moov");
    claim.extend_from_slice(&(10u64 << 30).to_be_bytes());
    claim.resize(1024, 0);
    let huge = dir.join("huge-claim.mp4");
    std::fs::write(&huge, &claim).expect("write");
    let cinepak = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-t",
            "1",
            "-c:v",
            "cinepak",
        ],
        &dir.join("cinepak.mov"),
    );

    let cases: [(&std::path::Path, &str); 5] = [
        (&truncated, "truncated"),
        (&empty, "empty"),
        (&text, "unsupported format"),
        (&huge, "truncated"),
        (&cinepak, "unsupported video codec"),
    ];
    let mut ids = Vec::new();
    for (file, _) in &cases {
        ids.push(api.upload_id(file).await);
    }
    let good_id = api.upload_id(&good).await;
    for ((file, expect), id) in cases.iter().zip(&ids) {
        let a = api.wait_final(id).await;
        assert_eq!(a["state"], "Error", "{} → {a}", file.display());
        let reason = a["error"].as_str().unwrap_or("");
        assert!(
            reason.contains(expect),
            "{}: reason {reason:?} should mention {expect:?}",
            file.display()
        );
    }
    assert_eq!(
        api.wait_final(&good_id).await["state"],
        "Probed",
        "other assets unaffected"
    );
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_uses_multipart_urls() {
    let mut opts = options("multipart");
    opts.params.insert("MultipartThresholdBytes".into(), "5242880".into());
    opts.params.insert("MultipartPartSizeBytes".into(), "5242880".into());
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("multipart");
    let wav = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000",
            "-t",
            "65",
            "-ac",
            "2",
            "-c:a",
            "pcm_s16le",
        ],
        &dir.join("long.wav"),
    );
    let size = std::fs::metadata(&wav).expect("meta").len();
    assert!(size > 12_000_000);
    let (status, created) = api
        .call(
            Method::POST,
            "/assets",
            Some(json!({"file_name": "x.wav", "size": size})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["upload"]["kind"], "multipart");
    assert_eq!(created["upload"]["parts"].as_array().map(Vec::len), Some(3));

    let asset = api.upload(&wav).await.expect("multipart upload");
    let done = api.wait_final(asset["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "Probed", "{done}");
    assert_eq!(done["source"]["size"].as_u64(), Some(size));
    assert_eq!(done["media"]["container"], "wav");
    assert!((done["media"]["duration_secs"].as_f64().unwrap_or(0.0) - 65.0).abs() < 0.01);
    assert_eq!(done["media"]["audio"][0]["channels"], 2);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors() {
    let stack = stack("bad-requests").await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    let base = stack.api_url();

    let r = http.get(format!("{base}/assets")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = http
        .get(format!("{base}/assets"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    let r = http.get(format!("{base}/openapi.json")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("openapi json");
    assert!(doc["paths"]["/assets/{id}"].is_object());

    let bad_json = api
        .req(Method::POST, "/assets")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_json.status(), 400);
    let v: Value = bad_json.json().await.expect("json");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("invalid JSON"));
    for (body, status) in [
        (json!({}), 400),
        (json!({"file_name": "a/b.mp4"}), 400),
        (json!({"file_name": "a.mp4", "size": -5}), 400),
        (json!({"file_name": "a.mp4", "unknown": 1}), 400),
        (json!({"file_name": "a.mp4", "size": 1u64 << 60}), 400),
    ] {
        let (s, v) = api.call(Method::POST, "/assets", Some(body.clone())).await;
        assert_eq!(s, status, "{body} → {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let big = "x".repeat(300 * 1024);
    let r = api.req(Method::POST, "/assets").body(big).send().await.expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(api.call(Method::GET, "/assets/not-a-uuid", None).await.0, 400);
    let missing = format!("/assets/{}", uuid::Uuid::new_v4());
    assert_eq!(api.call(Method::GET, &missing, None).await.0, 404);
    assert_eq!(api.call(Method::DELETE, &missing, None).await.0, 404);
    assert_eq!(api.call(Method::GET, "/assets?limit=0", None).await.0, 400);
    assert_eq!(api.call(Method::GET, "/assets?next=garbage", None).await.0, 400);
    let (s, v) = api
        .call(
            Method::POST,
            &format!("{missing}/upload/complete"),
            Some(json!({"upload_id": "x", "parts": []})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(api.call(Method::GET, "/nowhere", None).await.0, 404);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_queue_without_blocking_the_batch() {
    let stack = stack_with("dlq", &[("IngestMaxReceiveCount", "2")]).await;
    let api = Api::new(&stack);
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    sqs.send_message()
        .queue_url(&stack.queue_urls["IngestQueue"])
        .message_body("this is not an S3 notification")
        .send()
        .await
        .expect("send");
    // A good upload in the same window is processed regardless.
    let dir = scratch("dlq");
    let file = h264_aac_mp4(&dir, "ok.mp4", "160x120", 25, 1);
    let created = api.upload(&file).await.expect("upload");
    assert_eq!(
        api.wait_final(created["id"].as_str().expect("id")).await["state"],
        "Probed"
    );
    let start = Instant::now();
    loop {
        let (dlq, _) = queue_depth(&stack, "IngestDeadLetterQueue").await;
        if dlq == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "poison message never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failed = stack.host.functions["IngestFunction"]
        .failed_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(failed >= 2, "the poison message was retried ({failed} failures)");
    finish(stack).await;
}

/// An upload whose probe never completes (ingest recorded it, then every invocation died: out of memory, a crash,
/// throttling) ends in Error with the reason once the probe's deadline has passed — never Uploaded forever: the
/// sweeper (a scheduled function the local host runs) moves it, with nobody reading the asset, and the API shows
/// the same. Ingest is paused here, and the record it writes before probing is written by the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_probe_never_completes_ends_in_error() {
    let mut opts = options("probe-deadline");
    opts.params.insert("ProbeDeadlineSeconds".into(), "3".into());
    opts.host.schedule_every = Some(Duration::from_secs(1));
    opts.host.paused = vec!["IngestFunction".into()];
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("probe-deadline");
    let file = h264_aac_mp4(&dir, "p.mp4", "160x90", 25, 1);
    let created = api.upload(&file).await.expect("upload");
    let id = created["id"].as_str().expect("id").to_string();
    // The stored record, read past the API (whose reads would repair it themselves).
    use vod_domain::AssetStore;
    let store = vod_aws::DynamoAssetStore::new(aws_sdk_dynamodb::Client::new(&stack.sdk), &stack.spec.tables[0].name);
    let asset_id = vod_domain::AssetId::parse(&id).expect("asset id");
    let mut recorded = store.get(asset_id).await.expect("get").expect("asset");
    recorded.state = vod_domain::AssetState::Uploaded;
    recorded.source = Some(vod_domain::AssetFile {
        bucket: stack.bucket("UploadBucket").expect("upload bucket").to_string(),
        key: recorded
            .upload_key
            .clone()
            .unwrap_or_else(|| format!("uploads/{id}/p.mp4")),
        size: std::fs::metadata(&file).expect("file").len(),
        etag: "\"never-probed\"".into(),
        content_type: None,
        uploaded_at: chrono::Utc::now(),
    });
    recorded.updated_at = chrono::Utc::now();
    store.update(&recorded).await.expect("recorded as ingest does");
    let start = Instant::now();
    loop {
        let stored = store.get(asset_id).await.expect("get").expect("asset");
        if stored.state == vod_domain::AssetState::Error {
            let reason = stored.error.unwrap_or_default();
            assert!(reason.contains("probe did not complete within 3 s"), "{reason}");
            break;
        }
        assert_eq!(stored.state, vod_domain::AssetState::Uploaded);
        assert!(start.elapsed() < Duration::from_secs(60), "still {:?}", stored.state);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        stack.host.functions["SweeperFunction"]
            .invocations
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let (s, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    assert_eq!((s, &asset["state"]), (200, &json!("Error")), "{asset}");
    // The listing shows the same.
    let all = api.list_all().await;
    let listed = all.iter().find(|a| a["id"] == id.as_str()).expect("listed");
    assert_eq!(listed["state"], "Error");
    finish(stack).await;
}

/// The upload key serves one upload (found on a running stack: re-using a Ready, published asset's upload URL
/// with a garbage file turned the asset to Error): once the source is probed, a new object under its key changes
/// neither the asset nor its outputs, and the tasks of a job created before it fail with the reason rather than
/// encode a file that was never probed. Fails on the code before the fix (the asset went to Error; the tasks
/// read the new file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_upload_to_a_probed_asset_changes_nothing() {
    let dir = scratch("integrity");
    let file = h264_aac_mp4(&dir, "i.mp4", "160x90", 25, 2);
    let replace = |stack: &vod_local::LocalStack, asset: &Value| {
        let put = s3(stack)
            .put_object()
            .bucket(asset["source"]["bucket"].as_str().expect("bucket").to_string())
            .key(asset["source"]["key"].as_str().expect("key").to_string())
            .body(ByteStream::from(b"garbage, not a video".repeat(100)));
        async move { put.send().await.expect("put") }
    };
    let ingested = |stack: &vod_local::LocalStack| {
        stack.host.functions["IngestFunction"]
            .invocations
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // The new object's notification was handled (the second stack shares the first one's queues, where a
    // message received as the first one stopped stays invisible for a while: invocations are counted instead).
    let handled = |stack: &vod_local::LocalStack, before: u64| {
        let f = stack.host.functions["IngestFunction"].clone();
        async move {
            let start = Instant::now();
            while f.invocations.load(std::sync::atomic::Ordering::Relaxed) <= before {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the new object was never ingested"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };

    // A job is queued (the encoder is paused), then someone holding the upload URL (or bucket write access)
    // puts another file under the source's key: the asset keeps its probed source.
    let opts = options("integrity");
    let mut paused_opts = opts.clone();
    paused_opts.host.paused = vec!["EncodeFunction".into()];
    let paused = vod_local::LocalStack::start(paused_opts).await.expect("stack");
    let api = Api::new(&paused);
    let a = api.upload_id(&file).await;
    let probed = api.wait_final(&a).await;
    assert_eq!(probed["state"], "Probed");
    let job = api.start_job(&a, "tiny").await;
    let before = ingested(&paused);
    replace(&paused, &probed).await;
    wait_ingest_idle(&paused, before + 1).await;
    let (_, after) = api.call(Method::GET, &format!("/assets/{a}"), None).await;
    assert_eq!(after["state"], "Probed", "{after}");
    assert_eq!(after["source"], probed["source"], "the probed source is kept");
    finish(paused).await;

    // Its tasks find the object replaced and fail the job with the reason.
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let failed = wait_job(&api, job["id"].as_str().expect("job id"), 300).await;
    assert_eq!(failed["state"], "Error", "{failed}");
    let reason = failed["error"].as_str().unwrap_or_default();
    assert!(reason.contains("replaced after it was probed"), "{reason}");

    // A Ready asset: a new upload to its key changes neither its state nor its outputs.
    let b = api.upload_id(&file).await;
    assert_eq!(api.wait_final(&b).await["state"], "Probed");
    let job = api.start_job(&b, "tiny").await;
    let done = wait_job(&api, job["id"].as_str().expect("job id"), 300).await;
    assert_eq!(done["state"], "Finished", "{done}");
    let (_, ready) = api.call(Method::GET, &format!("/assets/{b}"), None).await;
    assert_eq!(ready["state"], "Ready");
    let before = ingested(&stack);
    replace(&stack, &ready).await;
    handled(&stack, before).await;
    let (_, after) = api.call(Method::GET, &format!("/assets/{b}"), None).await;
    assert_eq!(after["state"], "Ready", "{after}");
    assert!(after["error"].is_null(), "{after}");
    assert_eq!(after["source"], ready["source"], "the probed source is kept");
    assert_eq!(after["output"], ready["output"], "the outputs are kept");
    finish(stack).await;
}

/// Hostile uploads (`vod_media::testkit::hostile_corpus`: a million `free` boxes, sample-table bombs, entry
/// counts that lie, tables that disagree, chunks outside the file, deep nesting, a polyglot, a cut box) each end
/// their asset in Error with the refusal's reason within seconds — far within the probe's deadline — through the
/// real ingest path (S3 notification, queue, ingest function, ranged reads). The probe's heap on each stays under
/// 16 MiB (measured by vod-media's `hostile` test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_end_in_error_within_the_probe_deadline() {
    let stack = stack_with("hostile", &[("ProbeDeadlineSeconds", "120")]).await;
    let api = Api::new(&stack);
    let dir = scratch("hostile");
    let start = Instant::now();
    let mut uploaded = Vec::new();
    for f in vod_media::testkit::hostile_corpus() {
        let path = dir.join(f.name);
        std::fs::write(&path, &f.bytes).expect("write");
        let id = api.upload_id(&path).await;
        uploaded.push((f.name, f.reason, id));
    }
    for (name, reason, id) in &uploaded {
        let a = api.wait_final(id).await;
        assert_eq!(a["state"], "Error", "{name} → {a}");
        let got = a["error"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{name}: {got:?} should mention {reason:?}");
        assert!(
            !got.contains("did not complete"),
            "{name} was refused by the probe, not the deadline: {got}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "every hostile upload ended within the probe's deadline ({:?})",
        start.elapsed()
    );
    finish(stack).await;
}

/// `vodctl upload` of a large file interrupted after some parts (the connection dropped, the process died) resumes
/// on the next run: the same asset, the stored parts skipped, the progress bar from where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_multipart_upload_is_resumed_by_vodctl() {
    let mut opts = options("resume");
    opts.params.insert("MultipartThresholdBytes".into(), "5242880".into());
    opts.params.insert("MultipartPartSizeBytes".into(), "5242880".into());
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let dir = scratch("resume");
    std::env::set_var("VODCTL_STATE_DIR", dir.join("state"));
    // ~100 MB: 20 parts of 5 MiB.
    let wav = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000",
            "-t",
            "520",
            "-ac",
            "2",
            "-c:a",
            "pcm_s16le",
        ],
        &dir.join("big.wav"),
    );
    let size = std::fs::metadata(&wav).expect("meta").len();
    let client = vodctl::client::Api::new(stack.api_url(), Some(TOKEN.into()));
    let s3 = s3(&stack);
    let bucket = stack.bucket("UploadBucket").expect("upload bucket").to_string();
    // First run: interrupted once two parts are stored.
    let first = {
        let (client, wav) = (
            vodctl::client::Api::new(stack.api_url(), Some(TOKEN.into())),
            wav.clone(),
        );
        tokio::spawn(async move { client.upload(&wav, None).await })
    };
    let start = Instant::now();
    let stored_before = loop {
        let uploads = s3
            .list_multipart_uploads()
            .bucket(&bucket)
            .send()
            .await
            .expect("list uploads");
        let mut stored = 0;
        for u in uploads.uploads() {
            let parts = s3
                .list_parts()
                .bucket(&bucket)
                .key(u.key().unwrap_or_default())
                .upload_id(u.upload_id().unwrap_or_default())
                .send()
                .await
                .expect("list parts");
            stored += parts.parts().len();
        }
        if stored >= 2 {
            first.abort();
            break stored;
        }
        assert!(
            !first.is_finished(),
            "the upload finished before it could be interrupted"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no part was stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = first.await;
    let states: Vec<_> = std::fs::read_dir(dir.join("state/uploads"))
        .expect("resume state")
        .flatten()
        .collect();
    assert_eq!(states.len(), 1, "the interrupted upload is remembered");
    let state: Value = serde_json::from_slice(&std::fs::read(states[0].path()).expect("state")).expect("json");
    let asset_id = state["asset"]["id"].as_str().expect("asset id").to_string();
    let api = Api::new(&stack);
    let (_, a) = api.call(Method::GET, &format!("/assets/{asset_id}"), None).await;
    assert_eq!(a["state"], "Created", "nothing completed yet: {a}");

    // Second run: the same asset, finished from the parts already stored.
    let resumed = client.upload(&wav, None).await.expect("resumed upload");
    assert_eq!(resumed["id"], asset_id.as_str(), "the same asset, not a new one");
    assert!(
        std::fs::read_dir(dir.join("state/uploads"))
            .expect("dir")
            .next()
            .is_none(),
        "the state is removed once the upload completes"
    );
    let done = api.wait_final(&asset_id).await;
    assert_eq!(done["state"], "Probed", "{done}");
    assert_eq!(done["source"]["size"].as_u64(), Some(size));
    assert!((done["media"]["duration_secs"].as_f64().unwrap_or(0.0) - 520.0).abs() < 0.01);
    let all = api.list_all().await;
    assert_eq!(all.len(), 1, "one asset for the two runs");
    println!("interrupted after {stored_before} parts, resumed");
    finish(stack).await;
}
