//! Encoding end to end: a generated H.264/AAC clip (≥ 3 segments, ≥ 2 chunks) → job with the `tiny` preset →
//! tasks fanned out over SQS to the encoder → finalized asset; ffmpeg judges the renditions (size, frame count,
//! duration, PSNR against the scaled source, audio present and in sync) and the progressive MP4s.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// Concatenates a rendition's init segment and media segments (from its index) into one fragmented MP4.
async fn fetch_rendition(stack: &vod_local::LocalStack, bucket: &str, init: &str, index: &str, out: &Path) -> Value {
    let idx: Value = serde_json::from_slice(&download(stack, bucket, index).await).expect("index json");
    let mut bytes = download(stack, bucket, init).await;
    for s in idx["segments"].as_array().expect("segments") {
        let seg = download(stack, bucket, s["key"].as_str().expect("key")).await;
        assert_eq!(
            seg.len() as u64,
            s["size"].as_u64().unwrap_or(0),
            "index size of {}",
            s["key"]
        );
        bytes.extend(seg);
    }
    std::fs::write(out, bytes).expect("write");
    idx
}

/// A webhook receiver on loopback: collects (signature header, body) of each POST.
type Hooks = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

fn webhook_receiver() -> (String, Hooks) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got: Hooks = Default::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            let Ok(clone) = stream.try_clone() else { continue };
            let mut reader = BufReader::new(clone);
            let (mut len, mut sig) = (0usize, String::new());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("x-vod-signature:") {
                    sig = v.trim().to_string();
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
            if let Ok(mut g) = sink.lock() {
                g.push((sig, body));
            }
        }
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_is_encoded_into_a_playable_av1_ladder() {
    let mut opts = options("encode");
    opts.params.insert("EncodeMaxReceiveCount".into(), "2".into());
    let (hook_url, hooks) = webhook_receiver();
    opts.params.insert("WebhookUrl".into(), hook_url);
    opts.params.insert("WebhookSecret".into(), "e2e-webhook-secret".into());
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    // Job events on the bus go to a queue of the test's through a rule.
    let events = aws_sdk_eventbridge::Client::new(&stack.sdk);
    let bus = stack.spec.event_buses[0].clone();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let watch_name = format!("{}-watch", stack.spec.tables[0].name);
    let watch_url = sqs
        .create_queue()
        .queue_name(&watch_name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    events
        .put_rule()
        .event_bus_name(&bus)
        .name("job-events")
        .event_pattern(json!({"source": ["vod.jobs"]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .event_bus_name(&bus)
        .rule("job-events")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("watch")
                .arn(stack.spec.queue_arn(&watch_name))
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    let api = Api::new(&stack);
    let dir = scratch("encode");
    // x264 with B-frames and key frames at 0 and 2.6 s only (as a long GOP would have them).
    let source: PathBuf = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "1000",
            "-sc_threshold",
            "0",
            "-force_key_frames",
            "0,2.6",
            "-c:a",
            "aac",
            "-ac",
            "2",
        ],
        &dir.join("source.mp4"),
    );
    let asset = api.upload(&source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    let probed = api.wait_final(&id).await;
    assert_eq!(probed["state"], "Probed");
    assert_eq!(
        probed["media"]["video"][0]["key_frames_ms"],
        json!([0, 2600]),
        "{probed}"
    );

    let (status, presets) = api.call(Method::GET, "/presets", None).await;
    assert_eq!(status, 200);
    assert!(presets["items"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "tiny")));

    let (status, job) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["plan"]["segment_count"], 5);
    // Chunks of at most 2 one-second segments, cut where the fewest frames before a chunk must be decoded and
    // dropped: 1 + 0.4 s (after the key frame at 2.6 s) instead of 2 + 1.4 s for [0, 2) [2, 4) [4, 5).
    let chunks: Vec<(u64, u64)> = job["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["kind"]["kind"] == "video")
        .filter_map(|t| Some((t["kind"]["first_segment"].as_u64()?, t["kind"]["end_segment"].as_u64()?)))
        .collect();
    assert_eq!(chunks, vec![(0, 1), (1, 3), (3, 5)], "{job}");
    let job_id = job["id"].as_str().expect("job id").to_string();
    let done = wait_job(&api, &job_id, 600).await;
    assert_eq!(done["state"], "Finished", "{done}");
    assert_eq!(done["progress"], 100);
    assert!(done["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .all(|t| t["state"] == "Finished"));

    let (_, listed) = api.call(Method::GET, &format!("/assets/{id}/jobs"), None).await;
    assert_eq!(listed["items"][0]["id"], job_id.as_str());

    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    assert_eq!(asset["state"], "Ready", "{asset}");
    let output = &asset["output"];
    let bucket = output["bucket"].as_str().expect("bucket").to_string();
    let renditions = output["renditions"].as_array().expect("renditions");
    assert_eq!(renditions.len(), 2);
    // One audio rendition per audio codec of the preset: `tiny` has Opus only.
    let audio = output["audio"].as_array().expect("audio renditions");
    assert_eq!(audio.len(), 1, "{output}");
    assert_eq!(
        (&audio[0]["name"], &audio[0]["codecs"]),
        (&json!("audio"), &json!("opus"))
    );

    for r in renditions {
        let (w, h) = (r["width"].as_u64().unwrap_or(0), r["height"].as_u64().unwrap_or(0));
        assert!(r["codecs"].as_str().unwrap_or("").starts_with("av01.0."), "{r}");
        let name = r["name"].as_str().unwrap_or("r");
        let file = dir.join(format!("{name}.mp4"));
        fetch_rendition(
            &stack,
            &bucket,
            r["init"].as_str().expect("init"),
            r["index"].as_str().expect("index"),
            &file,
        )
        .await;
        let p = probe_json(&file);
        let v = stream(&p, "video").unwrap_or(&Value::Null);
        assert_eq!(v["codec_name"], "av1", "{p}");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(w), Some(h)));
        assert_eq!(v["nb_read_frames"].as_str(), Some("125"), "every frame present: {v}");
        let dur: f64 = p["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        assert!((dur - 5.0).abs() <= 0.04, "duration {dur}");
        let q = psnr(&file, &source, w, h);
        assert!(q > 28.0, "{name}: PSNR {q:.2} dB against the scaled source");

        // The progressive MP4: video and audio, in sync.
        let prog = dir.join(format!("{name}-progressive.mp4"));
        std::fs::write(
            &prog,
            progressive_file(&stack, &bucket, r["progressive"].as_str().expect("progressive")).await,
        )
        .expect("write");
        let p = probe_json(&prog);
        let (v, a) = (
            stream(&p, "video").unwrap_or(&Value::Null),
            stream(&p, "audio").unwrap_or(&Value::Null),
        );
        assert_eq!(v["nb_read_frames"].as_str(), Some("125"));
        assert_eq!(a["codec_name"], "opus");
        let vd: f64 = v["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
        let ad: f64 = a["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
        assert!(
            (vd - 5.0).abs() <= 0.04 && (ad - vd).abs() <= 0.06,
            "video {vd} s, audio {ad} s"
        );
    }

    // Job events arrived on the bus (through the rule) and at the webhook, signed. The Finished event is published
    // right after the state change that wait_job saw, and a standard queue does not keep order, so keep reading
    // until both ends of the job are in.
    let mut states: Vec<(String, u64)> = Vec::new();
    let start = Instant::now();
    while !(states.iter().any(|(s, _)| s == "Finished") && states.iter().any(|(s, _)| s == "Scheduled")) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no Scheduled and Finished events on the bus: {states:?}"
        );
        let out = sqs
            .receive_message()
            .queue_url(&watch_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        for m in out.expect("receive").messages.unwrap_or_default() {
            let ev: Value = serde_json::from_str(m.body().unwrap_or("{}")).expect("event json");
            assert_eq!(ev["source"], "vod.jobs");
            assert_eq!(ev["detail"]["job_id"], job_id.as_str());
            let state = ev["detail"]["state"].as_str().unwrap_or("").to_string();
            states.push((state, ev["detail"]["progress"].as_u64().unwrap_or(0)));
        }
    }
    assert!(states.iter().any(|(s, _)| s == "Scheduled"), "{states:?}");
    assert!(states.iter().any(|(s, p)| s == "Finished" && *p == 100), "{states:?}");
    assert!(
        states.iter().any(|(s, p)| s == "Processing" && *p > 0 && *p < 100),
        "progress events: {states:?}"
    );
    let start = Instant::now();
    let hooks = loop {
        let got = hooks.lock().expect("hooks").clone();
        if got
            .iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("\"Finished\""))
        {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no Finished webhook call ({} calls)",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(hooks.len() >= 3, "webhook calls: {}", hooks.len());
    for (sig, body) in &hooks {
        assert_eq!(sig, &vod_app::events::sign(b"e2e-webhook-secret", body), "signed body");
    }

    // A redelivered task message changes nothing.
    let f = &stack.host.functions["EncodeFunction"];
    let before = f.invocations.load(std::sync::atomic::Ordering::Relaxed);
    sqs.send_message()
        .queue_url(&stack.queue_urls["EncodeQueue"])
        .message_body(json!({"job_id": job_id, "task": 0}).to_string())
        .send()
        .await
        .expect("send");
    let start = Instant::now();
    while f.invocations.load(std::sync::atomic::Ordering::Relaxed) == before {
        assert!(start.elapsed() < Duration::from_secs(30), "duplicate never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = wait_job(&api, &job_id, 30).await;
    assert_eq!(again["state"], "Finished");
    assert_eq!(again["tasks_done"], again["tasks_total"], "counted once");

    // Deleting the asset removes its jobs and tasks too.
    assert_eq!(api.call(Method::DELETE, &format!("/assets/{id}"), None).await.0, 204);
    assert_eq!(api.call(Method::GET, &format!("/jobs/{job_id}"), None).await.0, 404);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_source_fails_the_job_and_cancel_stops_tasks() {
    let stack = stack_with("encode-bad", &[("EncodeMaxReceiveCount", "2")]).await;
    let api = Api::new(&stack);
    let dir = scratch("encode_bad");
    // moov intact (probes fine), media data destroyed: decoding must fail.
    let good = h264_aac_mp4(&dir, "good.mp4", "320x240", 25, 3);
    let mut bytes = std::fs::read(&good).expect("read");
    let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("mdat");
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov");
    let end = if moov > mdat { moov - 4 } else { bytes.len() };
    for b in &mut bytes[mdat + 4..end] {
        *b = 0xA5;
    }
    let broken = dir.join("broken.mp4");
    std::fs::write(&broken, &bytes).expect("write");
    let asset = api.upload(&broken).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&id).await["state"], "Probed");
    let (status, job) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let done = wait_job(&api, job["id"].as_str().expect("id"), 300).await;
    assert_eq!(done["state"], "Error", "{done}");
    assert!(
        done["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a reason: {done}"
    );

    // An unsupported codec: the job is created in Error with the reason, and no task is queued.
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
    let m = api.upload(&cinepak).await.expect("upload");
    let mid = m["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&mid).await["state"], "Error");
    let (status, job) = api
        .call(
            Method::POST,
            &format!("/assets/{mid}/jobs"),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["state"], "Error", "{job}");
    assert_eq!(job["tasks_total"], 0);
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("unsupported video codec")),
        "{job}"
    );

    // Unknown preset and unprobed assets are refused before any work.
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({"preset": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(Method::POST, &format!("/assets/{id}/jobs"), Some(json!({"preset": 5})))
        .await;
    assert_eq!(status, 400);

    // Cancel: a job cancelled at once ends Canceled and its tasks do not run to completion.
    let good_asset = api.upload(&good).await.expect("upload");
    let gid = good_asset["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&gid).await["state"], "Probed");
    let (_, job) = api
        .call(
            Method::POST,
            &format!("/assets/{gid}/jobs"),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    let jid = job["id"].as_str().expect("id").to_string();
    let (status, c) = api.call(Method::POST, &format!("/jobs/{jid}/cancel"), None).await;
    assert_eq!(status, 200, "{c}");
    let end = wait_job(&api, &jid, 300).await;
    assert_eq!(end["state"], "Canceled", "{end}");
    let finished = end["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["state"] == "Finished")
        .count();
    let total = end["tasks"].as_array().map(Vec::len).unwrap_or(0);
    assert!(finished < total, "remaining tasks were stopped: {end}");
    let (status, _) = api.call(Method::POST, &format!("/jobs/{jid}/cancel"), None).await;
    assert_eq!(status, 409, "a finished job cannot be cancelled again");
    finish(stack).await;
}

/// Issue 15 item 8: deleting an asset while its tasks run leaves nothing behind. Before, a task that was encoding
/// when the asset was deleted wrote its segments afterwards, under the deleted asset's prefix, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_assets_running_tasks_leave_nothing_behind() {
    let stack = stack("delete-running").await;
    let api = Api::new(&stack);
    let dir = scratch("delete-running");
    let source = h264_aac_mp4(&dir, "clip.mp4", "640x360", 25, 8);
    let id = api.upload_id(&source).await;
    assert_eq!(api.wait_final(&id).await["state"], "Probed");
    let job = api.start_job(&id, "tiny").await;
    let jid = job["id"].as_str().expect("job id").to_string();
    // Delete as soon as a task is being encoded.
    let started = Instant::now();
    loop {
        let (_, j) = api.call(Method::GET, &format!("/jobs/{jid}"), None).await;
        let running = j["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["state"] == "Processing");
        if running {
            break;
        }
        assert!(
            j["state"] != "Finished",
            "the job finished before a task could be caught running: {j}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no task started: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, v) = api.call(Method::DELETE, &format!("/assets/{id}"), None).await;
    assert_eq!(s, 204, "{v}");
    // Every task message of the job is settled (the running one ends, the others find no job).
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let url = stack.queue_urls["EncodeQueue"].clone();
    let started = Instant::now();
    loop {
        let a = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes");
        let count = |n: aws_sdk_sqs::types::QueueAttributeName| {
            a.attributes()
                .and_then(|m| m.get(&n))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{left} task messages still in flight"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .build(),
    );
    let media = stack.bucket("MediaBucket").expect("media bucket").to_string();
    let left = s3
        .list_objects_v2()
        .bucket(&media)
        .prefix(format!("assets/{id}/"))
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.is_empty(), "objects of the deleted asset remain: {keys:?}");
    let (s, _) = api.call(Method::GET, &format!("/jobs/{jid}"), None).await;
    assert_eq!(s, 404, "the job is gone");
    finish(stack).await;
}

/// A stack of `opts` with the encoder paused, `source` uploaded and probed, and a job created with `preset` (its
/// messages wait in the queue): the stack, the asset id and the job.
async fn job_with_encoder_paused(
    opts: &vod_local::LocalStackOptions,
    source: &Path,
    preset: &str,
) -> (vod_local::LocalStack, String, Value) {
    let mut paused_opts = opts.clone();
    paused_opts.host.paused = vec!["EncodeFunction".into()];
    let paused = vod_local::LocalStack::start(paused_opts).await.expect("stack");
    let api = Api::new(&paused);
    let asset = api.upload(source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&id).await["state"], "Probed");
    let (status, job) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({ "preset": preset })),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    (paused, id, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_is_replaced_by_the_redelivery() {
    // First stack: the encoder is paused, so the job's messages wait in the queue.
    let opts = options("killed");
    let dir = scratch("killed");
    let source = h264_aac_mp4(&dir, "k.mp4", "320x240", 25, 3);
    let (paused, id, job) = job_with_encoder_paused(&opts, &source, "tiny").await;
    let job_id = vod_domain::job::JobId::parse(job["id"].as_str().expect("id")).expect("job id");

    // A worker took task 0, wrote half a segment and died: the task is Processing, the object is garbage.
    let store = vod_aws::DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&paused.sdk), &paused.spec.tables[0].name);
    use vod_domain::JobStore;
    store.start_task(job_id, 0).await.expect("start").expect("task");
    let bucket = paused.bucket("MediaBucket").expect("media bucket").to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&paused.sdk)
            .force_path_style(true)
            .build(),
    );
    let key = format!("assets/{id}/jobs/{job_id}/180p/seg-00000.m4s");
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from(vec![0u8; 100]))
        .send()
        .await
        .expect("put");
    finish(paused).await;

    // The replacement worker gets every message (task 0's among them) and finishes the job once.
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let done = wait_job(&api, &job_id.to_string(), 600).await;
    assert_eq!(done["state"], "Finished", "{done}");
    assert_eq!(done["tasks_done"], done["tasks_total"]);
    let t0 = &done["tasks"][0];
    assert_eq!(t0["attempts"], 2, "task 0 ran again: {t0}");
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let r = &asset["output"]["renditions"][0];
    let file = dir.join("killed.mp4");
    fetch_rendition(
        &stack,
        &bucket,
        r["init"].as_str().expect("init"),
        r["index"].as_str().expect("index"),
        &file,
    )
    .await;
    let p = probe_json(&file);
    assert_eq!(
        stream(&p, "video").unwrap_or(&Value::Null)["nb_read_frames"].as_str(),
        Some("75"),
        "one correct output: {p}"
    );
    finish(stack).await;
}

/// A task whose every invocation runs past the encoder's timeout (the host abandons it, as Lambda does) reaches
/// the dead-letter queue after the retries; the encoder consumes that queue and the job ends in Error with the
/// reason, never Processing forever. (Job creation refuses plans whose tasks would not fit half the timeout, so
/// the job is created first, and the encoder then runs with a 1 s timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_outlives_the_function_timeout_fails_its_job_after_the_retries() {
    let mut opts = options("timeout");
    opts.params.insert("EncodeMaxReceiveCount".into(), "2".into());
    let dir = scratch("timeout");
    // A 360p chunk of the AV1 ladder (two rungs) takes several seconds to encode.
    let source = h264_aac_mp4(&dir, "t.mp4", "640x360", 25, 2);
    let (paused, id, job) = job_with_encoder_paused(&opts, &source, "adaptive-av1").await;
    finish(paused).await;

    opts.params.insert("EncodeTimeoutSeconds".into(), "1".into());
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    assert_eq!(
        stack.host.functions["EncodeFunction"].spec.timeout_secs, 1,
        "the host enforces the template's timeout"
    );
    let api = Api::new(&stack);
    let done = wait_job(&api, job["id"].as_str().expect("id"), 300).await;
    assert_eq!(done["state"], "Error", "{done}");
    let reason = done["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("did not complete in 2 deliveries") && reason.contains("timeout"),
        "{reason}"
    );
    let failed = stack.host.functions["EncodeFunction"]
        .failed_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        failed >= 2,
        "the task was retried before it was given up ({failed} failures)"
    );
    // A 1 s timeout cannot hold any task: new jobs are refused up front, naming the limit.
    let (status, refused) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({"preset": "adaptive-av1"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let msg = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("half of the encoder's 1 s timeout"), "{msg}");
    finish(stack).await;
}

/// A job whose task messages are lost (here: purged from the queue before any worker took them — the fate of the
/// tasks of a job whose creation was cut off) would stay Processing forever: the sweeper, a scheduled function of
/// the template that the local host runs on its schedule, ends it in Error with the reason once it has not
/// progressed for the stall limit, and publishes the job event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_task_messages_were_lost_is_ended_by_the_sweeper() {
    let mut opts = options("sweep-job");
    opts.params.insert("JobStallSeconds".into(), "3".into());
    let (hook_url, hooks) = webhook_receiver();
    opts.params.insert("WebhookUrl".into(), hook_url);
    opts.params.insert("WebhookSecret".into(), "e2e-webhook-secret".into());
    opts.host.schedule_every = Some(Duration::from_secs(1));
    let dir = scratch("sweep-job");
    let source = h264_aac_mp4(&dir, "s.mp4", "160x90", 25, 2);
    let (stack, _id, job) = job_with_encoder_paused(&opts, &source, "tiny").await;
    assert!(
        stack.host.functions["SweeperFunction"].spec.schedule.is_some(),
        "the sweeper runs on the template's schedule"
    );
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    sqs.purge_queue()
        .queue_url(&stack.queue_urls["EncodeQueue"])
        .send()
        .await
        .expect("purge");
    let api = Api::new(&stack);
    let job_id = job["id"].as_str().expect("id");
    let done = wait_job(&api, job_id, 120).await;
    assert_eq!(done["state"], "Error", "{done}");
    let reason = done["error"].as_str().unwrap_or_default();
    assert!(reason.contains("progressed for 3 s"), "{reason}");
    // The job event went out with the reason.
    let start = Instant::now();
    loop {
        let got = hooks.lock().expect("hooks").clone();
        let ended = got.iter().any(|(_, body)| {
            let e: Value = serde_json::from_slice(body).unwrap_or_default();
            e["job_id"] == job_id && e["state"] == "Error" && e["error"].as_str().is_some_and(|r| r == reason)
        });
        if ended {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no Error event for the job: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        stack.host.functions["SweeperFunction"]
            .invocations
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    finish(stack).await;
}
