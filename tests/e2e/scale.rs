//! Feature-length scale: plans of more than 10,000 tasks created within the API's time with every item under
//! DynamoDB's limit and tasks paged; limits refused with a clear 400.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// DynamoDB's size of an item (attribute names plus values), as its 400 KB limit counts it.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value(x)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + value(x)).sum::<usize>(),
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(|n| n.len()).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_ten_thousand_tasks_is_created_at_once_fanned_out_and_paged() {
    // The encoder does not poll: the fan-out steps are delivered to its handler by hand, and nothing is encoded.
    let mut opts = options("scale-plan");
    opts.host.paused = vec!["EncodeFunction".into()];
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("scale-plan");
    // 10,050 s of a 1 fps picture: one task per 1 s segment with the preset below.
    let secs = 10_050;
    let source = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("color=c=black:s=160x90:r=1:d={secs}"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
        ],
        &dir.join("long.mp4"),
    );
    let asset = api.upload(&source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    let probed = api.wait_final(&id).await;
    assert_eq!(probed["state"], "Probed", "{probed}");
    let preset = json!({
        "name": "one-second-tasks",
        "ladder": {"kind": "fixed", "rungs": [{"height": 90, "bitrate_kbps": 50, "speed": 10}]},
        "segment_duration": 1.0,
        "max_chunk_secs": 1.0,
    });
    let (s, body) = api.call(Method::POST, "/presets", Some(preset)).await;
    assert_eq!(s, 201, "{body}");

    let t0 = Instant::now();
    let (s, job) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/jobs"),
            Some(json!({"preset": "one-second-tasks"})),
        )
        .await;
    let took = t0.elapsed();
    assert_eq!(s, 201, "{job}");
    let total = job["tasks_total"].as_u64().expect("tasks_total");
    assert!(total >= 10_000, "{total} tasks");
    assert!(
        took < Duration::from_secs(5),
        "job creation took {took:?}: it must answer well within API Gateway's 30 s whatever the task count"
    );
    assert_eq!(
        job["tasks_queued"], 100,
        "the first tasks are queued at once, the rest fan out"
    );
    let job_id = job["id"].as_str().expect("id").to_string();

    // The API queued the first tasks and one fan-out step on the real queue. The steps then run in the encoder's
    // handler as the encoder would run them, but queue into memory: the emulator's SQS costs O(queue length) per
    // call (moto 5: ~0.25 s a call at 2,000 messages), which would make 10,000 messages take most of an hour.
    let Some(vod_local::host::Handler::Encode(worker)) =
        stack.host.functions.get("EncodeFunction").map(|f| f.handler.clone())
    else {
        panic!("the encoder's handler")
    };
    let memory = Arc::new(vod_domain::memory::MemoryTaskQueue::default());
    let mut worker = worker;
    worker.queue = memory.clone();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let url = stack.queue_urls["EncodeQueue"].clone();
    let mut seen_tasks = vec![0u32; total as usize];
    let mut steps: Vec<Value> = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).expect("task message");
            if body["expand"] == true {
                steps.push(body);
            } else {
                seen_tasks[body["task"].as_u64().expect("task") as usize] += 1;
            }
        }
    }
    assert_eq!(steps.len(), 1, "the API queued one fan-out step: {steps:?}");
    let deliver = |body: &Value, id: &str, receives: u32| {
        let event = json!({"Records": [{
            "messageId": id, "receiptHandle": "r", "body": body.to_string(),
            "attributes": {"ApproximateReceiveCount": receives.to_string()}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:encode",
            "awsRegion": "us-east-1"
        }]});
        serde_json::from_value::<aws_lambda_events::event::sqs::SqsEvent>(event).expect("event")
    };
    let fan_out_start = Instant::now();
    let (mut delivered, mut read) = (0usize, 0usize);
    while let Some(step) = steps.pop() {
        delivered += 1;
        assert!(delivered <= 20, "the fan-out does not end");
        let resp = vod_worker::handle_batch(&worker, deliver(&step, &format!("step-{delivered}"), 1)).await;
        assert!(resp.batch_item_failures.is_empty(), "fan-out step {step} failed");
        if delivered == 1 {
            // A step delivered twice changes nothing.
            let resp = vod_worker::handle_batch(&worker, deliver(&step, "again", 2)).await;
            assert!(resp.batch_item_failures.is_empty());
        }
        let sent = memory.sent.lock().expect("queue").clone();
        for m in &sent[read..] {
            if m.expand {
                steps.push(serde_json::to_value(m).expect("json"));
            } else {
                seen_tasks[m.task as usize] += 1;
            }
        }
        read = sent.len();
    }
    let steps = delivered;
    let (_, j) = api.call(Method::GET, &format!("/jobs/{job_id}"), None).await;
    assert_eq!(j["tasks_queued"].as_u64(), Some(total), "{j}");
    assert!(seen_tasks.iter().all(|&n| n > 0), "every task is queued");
    println!("fan-out: {steps} steps in {:?}", fan_out_start.elapsed());

    // Every item of the job's partition stays far under DynamoDB's 400 KB limit; the job item holds counters only.
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = &stack.spec.tables[0].name;
    let mut start = None;
    let (mut items, mut largest, mut job_item) = (0usize, 0usize, 0usize);
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("JOB#{job_id}")))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("query");
        for it in out.items.unwrap_or_default() {
            let size = item_size(&it);
            largest = largest.max(size);
            if it.get("SK").and_then(|s| s.as_s().ok()).is_some_and(|s| s == "JOB") {
                job_item = size;
            }
            items += 1;
        }
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    assert_eq!(items as u64, total + 1, "one item per task and the job");
    assert!(job_item > 0 && job_item < 8 * 1024, "job item {job_item} bytes");
    assert!(largest < 400 * 1024, "largest item {largest} bytes");
    println!(
        "{total} tasks: job item {job_item} B, largest item {largest} B, created in {took:?}, {steps} fan-out steps"
    );

    // Every task got one message: the repeated step was recognised as done.
    assert!(seen_tasks.iter().all(|&n| n == 1), "every task queued once");

    // GET /jobs/{id} pages its tasks.
    let (mut seen, mut after): (Vec<u64>, Option<u64>) = (Vec::new(), None);
    loop {
        let path = match after {
            Some(a) => format!("/jobs/{job_id}?tasks_limit=1000&tasks_after={a}"),
            None => format!("/jobs/{job_id}?tasks_limit=1000"),
        };
        let (s, page) = api.call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{page}");
        let tasks = page["tasks"].as_array().expect("tasks");
        assert!(tasks.len() <= 1000);
        seen.extend(tasks.iter().map(|t| t["index"].as_u64().expect("index")));
        match page["next_tasks"].as_u64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..total).collect::<Vec<_>>(), "every task once, in order");
    let (s, first) = api.call(Method::GET, &format!("/jobs/{job_id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        first["tasks"].as_array().map(Vec::len),
        Some(100),
        "100 tasks per page by default"
    );
    assert_eq!(first["next_tasks"], 99);
    let (s, bad) = api
        .call(Method::GET, &format!("/jobs/{job_id}?tasks_after=x"), None)
        .await;
    assert_eq!(s, 400, "{bad}");
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_beyond_the_limits_and_incredible_durations_are_refused_with_400() {
    let mut opts = options("scale-limits");
    opts.host.paused = vec!["EncodeFunction".into()];
    opts.params.insert("MaxJobTasks".into(), "5".into());
    opts.params.insert("MaxSourceSeconds".into(), "20".into());
    let stack = vod_local::LocalStack::start(opts).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("scale-limits");
    let short = h264_aac_mp4(&dir, "short.mp4", "160x120", 25, 8);
    let long = h264_aac_mp4(&dir, "long.mp4", "160x120", 25, 21);
    let mut ids = Vec::new();
    for f in [&short, &long] {
        let a = api.upload(f).await.expect("upload");
        let id = a["id"].as_str().expect("id").to_string();
        assert_eq!(api.wait_final(&id).await["state"], "Probed");
        ids.push(id);
    }
    // 8 s in 1 s segments of at most 2 s chunks: 4 video tasks and the audio task fit; the 21 s source does not.
    let (s, ok) = api
        .call(
            Method::POST,
            &format!("/assets/{}/jobs", ids[0]),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    assert_eq!(s, 201, "{ok}");
    let (s, err) = api
        .call(
            Method::POST,
            &format!("/assets/{}/jobs", ids[1]),
            Some(json!({"preset": "tiny"})),
        )
        .await;
    assert_eq!(s, 400, "{err}");
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("MaxSourceSeconds"), "{msg}");
    let (s, err) = api
        .call(
            Method::POST,
            &format!("/assets/{}/jobs", ids[0]),
            Some(json!({"preset": "adaptive-av1"})),
        )
        .await;
    assert_eq!(s, 201, "{err}");
    let one_second = json!({"name": "fine", "ladder": {"kind": "fixed", "rungs": [{"height": 90, "bitrate_kbps": 50, "speed": 10}]},
        "segment_duration": 1.0, "max_chunk_secs": 1.0});
    assert_eq!(api.call(Method::POST, "/presets", Some(one_second)).await.0, 201);
    let (s, err): (u16, Value) = api
        .call(
            Method::POST,
            &format!("/assets/{}/jobs", ids[0]),
            Some(json!({"preset": "fine"})),
        )
        .await;
    assert_eq!(s, 400, "{err}");
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("9 tasks") && msg.contains("MaxJobTasks"), "{msg}");
    finish(stack).await;
}

/// What ffprobe decodes of a URL: per stream type, frames decoded and where the last packet ends (seconds).
fn decode_url(url: &str, extra: &[&str]) -> HashMap<String, (u64, f64)> {
    let entries = [
        "-count_frames",
        "-show_entries",
        "stream=index,codec_type,nb_read_frames:packet=stream_index,pts_time,duration_time",
        url,
    ];
    let p = ffprobe(&[extra, &entries[..]].concat());
    let mut kinds: HashMap<u64, String> = HashMap::new();
    let mut result: HashMap<String, (u64, f64)> = HashMap::new();
    for s in p["streams"].as_array().into_iter().flatten() {
        let kind = s["codec_type"].as_str().unwrap_or("").to_string();
        kinds.insert(s["index"].as_u64().unwrap_or(0), kind.clone());
        let frames = s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
        result.entry(kind).or_insert((0, 0.0)).0 += frames;
    }
    let num = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    for pk in p["packets"].as_array().into_iter().flatten() {
        let kind = kinds
            .get(&pk["stream_index"].as_u64().unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        let end = num(&pk["pts_time"]) + num(&pk["duration_time"]);
        let e = result.entry(kind).or_insert((0, 0.0));
        e.1 = e.1.max(end);
    }
    result
}

/// A 60-minute title goes end to end: upload → job (one small rung, 2-minute chunks) → Ready → HLS, DASH and the
/// progressive download (assembled from the segments), each decoded to the exact frame count with the audio
/// ending within one frame of the video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_minute_title_goes_end_to_end() {
    let stack = stack("sixty-minutes").await;
    let api = Api::new(&stack);
    let dir = scratch("sixty-minutes");
    let (secs, fps) = (3600u64, 6u64);
    let source = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=128x72:rate={fps}"),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-ac",
            "1",
        ],
        &dir.join("sixty.mp4"),
    );
    let asset = api.upload(&source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    let probed = api.wait_final(&id).await;
    assert_eq!(probed["state"], "Probed", "{probed}");
    let preset = json!({
        "name": "feature-length-test",
        "ladder": {"kind": "fixed", "rungs": [{"height": 72, "bitrate_kbps": 50, "speed": 10}]},
        "segment_duration": 6.0,
        "max_chunk_secs": 120.0,
        "audio": {"bitrate_kbps": 32, "channels": 1},
    });
    let (s, body) = api.call(Method::POST, "/presets", Some(preset)).await;
    assert_eq!(s, 201, "{body}");
    let job = api.start_job(&id, "feature-length-test").await;
    assert_eq!(job["plan"]["segment_count"], 600);
    let done = wait_job(&api, job["id"].as_str().expect("id"), 1800).await;
    assert_eq!(done["state"], "Finished", "{done}");
    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let dl = api.locator(json!({"asset": id, "kind": "download"})).await;
    let frames = secs * fps;
    let urls = [
        ("hls", loc["urls"]["hls"].as_str().expect("hls").to_string(), Vec::new()),
        (
            "dash",
            loc["urls"]["dash"].as_str().expect("dash").to_string(),
            Vec::new(),
        ),
        // A response carries at most 4 MiB (Lambda's limit): ffmpeg asks for the rest of the file with -reconnect.
        (
            "progressive",
            dl["downloads"][0]["url"].as_str().expect("download").to_string(),
            vec!["-reconnect", "1"],
        ),
    ];
    for (kind, url, extra) in &urls {
        let d = decode_url(url, extra);
        let (vf, vend) = d.get("video").copied().unwrap_or_default();
        let (af, aend) = d.get("audio").copied().unwrap_or_default();
        println!("{kind}: {vf} video frames to {vend:.3} s, {af} audio frames to {aend:.3} s");
        assert_eq!(vf, frames, "{kind}: every frame decodes");
        assert!(af > 0, "{kind}: audio decodes");
        assert!(
            (aend - vend).abs() <= 1.0 / fps as f64 + 1e-3,
            "{kind}: audio ends at {aend:.3} s, video at {vend:.3} s"
        );
        assert!(
            (vend - secs as f64).abs() <= 1.0 / fps as f64,
            "{kind}: video ends at {vend:.3} s"
        );
    }

    // The whole file in one request (a browser's download, `curl` without a range): more than one packager
    // response carries, so it is stored whole on demand (by the encoder, memory one part) and the request is
    // redirected to it; meanwhile the client is told to come back — never a silently truncated file.
    let url = dl["downloads"][0]["url"].as_str().expect("download").to_string();
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    let (final_url, body) = loop {
        let r = http.get(&url).send().await.expect("download");
        match r.status().as_u16() {
            200 => break (r.url().to_string(), r.bytes().await.expect("body")),
            503 => {
                assert!(r.headers().contains_key("retry-after"));
                let e: Value = r.json().await.expect("json");
                assert_eq!(e["error"]["code"], "preparing", "{e}");
            }
            other => panic!("download: {other}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the file was never stored whole"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        !final_url.starts_with(&stack.api_url()),
        "redirected past the packager to the stored file: {final_url}"
    );
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let description = asset["output"]["renditions"][0]["progressive"]
        .as_str()
        .expect("progressive");
    let bucket = stack.bucket("MediaBucket").expect("media bucket").to_string();
    let assembled = progressive_file(&stack, &bucket, description).await;
    assert!(body.len() > 4 << 20, "larger than one response: {} bytes", body.len());
    assert!(
        body[..] == assembled[..],
        "the stored file is the file the packager serves by ranges"
    );
    finish(stack).await;
}
