//! `vod-bench`: benchmark scaffold that writes `bench/report.md` (and `.json`). Measures, in one run on this
//! machine: probe time per file (and underlying read calls) against a plain read of the same bytes, and each
//! function binary's size and cold start — process start to first event handled — against spawning `true`.
//! Usage: `cargo build --release -p api -p ingest && cargo run --release -p vod-e2e --bin vod-bench [BIN_DIR]`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use vod_media::{probe_with, ReadAt, SourceReader, PROBE_TIME_BUDGET};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ffmpeg(args: &[&str], out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Ok(out.to_path_buf());
    }
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .context("ffmpeg")?
        .success();
    if !ok {
        bail!("ffmpeg failed for {}", out.display());
    }
    Ok(out.to_path_buf())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Counts the reads a probe makes, and their bytes.
struct Counting<'a> {
    inner: &'a Vec<u8>,
    reads: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl ReadAt for Counting<'_> {
    fn size(&self) -> u64 {
        self.inner.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.inner.read_at(offset, len)?;
        self.bytes
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }
}

fn bench_probe(dir: &Path) -> Result<Vec<serde_json::Value>> {
    let lavfi = |src: &str| vec!["-f".to_string(), "lavfi".to_string(), "-i".to_string(), src.to_string()];
    let v = lavfi("testsrc2=size=1280x720:rate=30");
    let a = lavfi("sine=frequency=440:sample_rate=48000");
    let mut av: Vec<String> = v.iter().chain(a.iter()).cloned().collect();
    av.extend(["-t", "20"].map(String::from));
    let mut a60 = a.clone();
    a60.extend(["-t", "60", "-ac", "2"].map(String::from));
    let codec = |inputs: &[String], args: &str| -> Vec<String> {
        inputs
            .iter()
            .cloned()
            .chain(args.split_whitespace().map(String::from))
            .collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "h264-aac-moov-end.mp4",
            [
                av.clone(),
                vec![
                    "-c:v".into(),
                    "libx264".into(),
                    "-preset".into(),
                    "ultrafast".into(),
                    "-c:a".into(),
                    "aac".into(),
                ],
            ]
            .concat(),
        ),
        (
            "h264-aac-faststart.mp4",
            [
                av.clone(),
                vec![
                    "-c:v".into(),
                    "libx264".into(),
                    "-preset".into(),
                    "ultrafast".into(),
                    "-c:a".into(),
                    "aac".into(),
                    "-movflags".into(),
                    "+faststart".into(),
                ],
            ]
            .concat(),
        ),
        (
            "h264-aac.mkv",
            [
                av.clone(),
                vec![
                    "-c:v".into(),
                    "libx264".into(),
                    "-preset".into(),
                    "ultrafast".into(),
                    "-c:a".into(),
                    "aac".into(),
                ],
            ]
            .concat(),
        ),
        ("h264-ac3.ts", codec(&av, "-c:v libx264 -preset ultrafast -c:a ac3")),
        (
            "mpeg2-422-pcm.mxf",
            codec(&av, "-c:v mpeg2video -pix_fmt yuv422p -b:v 15M -c:a pcm_s16le"),
        ),
        (
            "mjpeg-pcm.avi",
            codec(&av, "-c:v mjpeg -pix_fmt yuvj420p -q:v 5 -c:a pcm_s16le"),
        ),
        ("wmv2-wma.wmv", codec(&av, "-c:v wmv2 -c:a wmav2")),
        (
            "h264-aac.flv",
            codec(&av, "-c:v libx264 -preset ultrafast -c:a aac -ar 44100"),
        ),
        ("mpeg2-mp2.mpg", codec(&av, "-c:v mpeg2video -c:a mp2 -f vob")),
        ("speech-60s.mp3", codec(&a60, "-c:a libmp3lame")),
        ("speech-60s.aac", codec(&a60, "-c:a aac")),
        ("master-60s.flac", codec(&a60, "-c:a flac")),
        ("theora-vorbis.ogg", codec(&av, "-c:v libtheora -q:v 5 -c:a libvorbis")),
        (
            "raw-2s.y4m",
            [
                v.clone(),
                vec!["-t".into(), "2".into(), "-pix_fmt".into(), "yuv420p".into()],
            ]
            .concat(),
        ),
        (
            "pcm-60s.wav",
            [
                a.clone(),
                vec![
                    "-t".into(),
                    "60".into(),
                    "-ac".into(),
                    "2".into(),
                    "-c:a".into(),
                    "pcm_s16le".into(),
                ],
            ]
            .concat(),
        ),
    ];
    let mut rows = Vec::new();
    for (name, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let file = ffmpeg(&args, &dir.join(name))?;
        let bytes = std::fs::read(&file)?;
        let runs = 30;
        let mut probe_t = Vec::new();
        let (mut reads, mut read_bytes) = (0, 0);
        let mut container = String::new();
        for _ in 0..runs {
            let src = Counting {
                inner: &bytes,
                reads: Default::default(),
                bytes: Default::default(),
            };
            let t = Instant::now();
            // As the ingest function probes: vod-media's own readers, then libavformat's (vod-avprobe).
            let info = probe_with(&src, PROBE_TIME_BUDGET, vod_avprobe::FORMATS)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            probe_t.push(t.elapsed().as_secs_f64());
            container = serde_json::to_value(info.container)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            std::hint::black_box(info);
            reads = src.reads.load(std::sync::atomic::Ordering::Relaxed);
            read_bytes = src.bytes.load(std::sync::atomic::Ordering::Relaxed);
        }
        // Baseline: reading the whole file through the same SourceReader (what a probe without seeking would cost).
        let mut copy_t = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut r = SourceReader::new(&bytes);
            let mut sink = Vec::with_capacity(bytes.len());
            r.read_to_end(&mut sink)?;
            copy_t.push(t.elapsed().as_secs_f64());
            std::hint::black_box(sink);
        }
        let p = median(probe_t);
        let c = median(copy_t);
        rows.push(
            json!({"file": name, "container": container, "bytes": bytes.len(), "probe_ms": p * 1e3,
            "read_calls": reads, "bytes_read": read_bytes, "full_read_ms": c * 1e3, "probe_over_full_read": p / c}),
        );
    }
    Ok(rows)
}

/// Minimal Lambda Runtime API (hand-written: cargo lambda's emulator is a program, not a library, and would add its
/// own latency): serves one event on /next and returns the time its response arrives.
fn serve_one_event(listener: &TcpListener, event: &str, started: Instant) -> Result<(f64, f64, String)> {
    let mut first_next = None;
    loop {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let (line, body) = read_request(&mut stream)?;
        if line.starts_with("GET") && line.contains("/invocation/next") {
            first_next.get_or_insert(started.elapsed().as_secs_f64());
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
                + 60_000;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: bench-1\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\ncontent-length: {}\r\n\r\n{event}",
                event.len()
            );
            stream.write_all(resp.as_bytes())?;
        } else if line.starts_with("POST") {
            let done = started.elapsed().as_secs_f64();
            stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")?;
            if line.contains("/error") {
                bail!("function reported an error: {body}");
            }
            return Ok((first_next.unwrap_or(done), done, body));
        } else {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Result<(String, String)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok((line, String::from_utf8_lossy(&body).into_owned()))
}

fn bench_cold_start(bin_dir: &Path) -> Result<Vec<serde_json::Value>> {
    let ingest_event = json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
        "body": json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}).to_string()}]})
    .to_string();
    let api_event = json!({"version": "2.0", "routeKey": "GET /openapi.json", "rawPath": "/openapi.json", "rawQueryString": "",
        "headers": {"host": "bench"}, "requestContext": {"http": {"method": "GET", "path": "/openapi.json", "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1", "userAgent": "bench"}, "requestId": "r1", "routeKey": "GET /openapi.json", "stage": "$default",
        "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench", "time": "", "timeEpoch": 0},
        "isBase64Encoded": false})
    .to_string();
    let http_event = |method: &str, path: &str| {
        json!({"version": "2.0", "routeKey": format!("{method} /stream/{{proxy+}}"), "rawPath": path, "rawQueryString": "",
            "headers": {"host": "bench"}, "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "bench"}, "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench", "time": "",
            "timeEpoch": 0}, "isBase64Encoded": false})
        .to_string()
    };
    // The packager and the key service answer without storage here (a malformed path, a preflight).
    let packager_event = http_event("GET", "/stream/not-a-locator/main.m3u8");
    let keys_event = http_event("OPTIONS", "/keys/clearkey");
    // Baseline: spawning a trivial process on the same machine.
    let mut base = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        Command::new("true").status()?;
        base.push(t.elapsed().as_secs_f64());
    }
    let spawn = median(base);
    let mut rows = Vec::new();
    for (bin, event) in [
        ("ingest", &ingest_event),
        ("api", &api_event),
        ("packager", &packager_event),
        ("keys", &keys_event),
    ] {
        // `target/<profile>/<bin>` or a `sam build` directory (`<Bin>Function/bootstrap`).
        let sam = bin_dir
            .join(format!("{}{}Function", bin[..1].to_uppercase(), &bin[1..]))
            .join("bootstrap");
        let path = if sam.exists() { sam } else { bin_dir.join(bin) };
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{} (build it first)", path.display()))?
            .len();
        let (mut inits, mut firsts) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let t = Instant::now();
            // A function built to start under the media layer's C runtime (ingest, with `layer-loader`) is run by
            // that runtime's loader with the layer's libraries, as in Lambda (this machine has no /opt/lib).
            let layer = bin_dir.join("MediaLibrariesLayer/lib");
            let loader = layer.join("ld-linux-x86-64.so.2");
            let mut command = if bin == "ingest" && loader.exists() {
                let mut c = Command::new(&loader);
                c.arg("--library-path").arg(&layer).arg(&path);
                c
            } else {
                Command::new(&path)
            };
            let mut child = command
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", bin)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("TABLE_NAME", "bench")
                .env("UPLOAD_BUCKET", "bench-up")
                .env("MEDIA_BUCKET", "bench-media")
                .env("ENCODE_QUEUE_URL", "http://127.0.0.1:9/queue/bench")
                .env("KMS_KEY_ID", "alias/bench")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let result = serve_one_event(&listener, event, t);
            let _ = child.kill();
            let _ = child.wait();
            let (init, first, body) = result?;
            if bin == "api" && !body.contains("200") {
                bail!("api answered unexpectedly: {body}");
            }
            inits.push(init);
            firsts.push(first);
        }
        let (i, f) = (median(inits), median(firsts));
        rows.push(
            json!({"function": bin, "binary_bytes": size, "init_ms": i * 1e3, "first_event_ms": f * 1e3,
            "spawn_true_ms": spawn * 1e3, "first_event_over_spawn": f / spawn}),
        );
    }
    Ok(rows)
}

fn main() -> Result<()> {
    let root = root();
    let bin_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    let dir = root.join(".build/bench");
    std::fs::create_dir_all(&dir)?;
    let probe_rows = bench_probe(&dir)?;
    let cold_rows = bench_cold_start(&bin_dir)?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mut md = String::new();
    md.push_str("# Benchmark report\n\n");
    md.push_str(&format!(
        "Machine: {cpu}, {} cores. Binaries: `{}`. All figures from one run.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        bin_dir.display()
    ));
    md.push_str("## Probe (in memory, median of 30)\n\nAs the ingest function probes (vod-media's readers, then libavformat's through vod-avprobe), through the budgeted reader of 1 MiB blocks. Ratio = probe time ÷ time to read the whole file through the same reader. In Lambda each read call is one ranged S3 GET; bytes read are what those GETs return.\n\n| file | container | bytes | probe ms | read calls | bytes read | full read ms | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in &probe_rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {} | {:.3} | {:.3} |\n",
            r["file"].as_str().unwrap_or(""),
            r["container"].as_str().unwrap_or(""),
            r["bytes"],
            r["probe_ms"].as_f64().unwrap_or(0.0),
            r["read_calls"],
            r["bytes_read"],
            r["full_read_ms"].as_f64().unwrap_or(0.0),
            r["probe_over_full_read"].as_f64().unwrap_or(0.0)
        ));
    }
    md.push_str("\n## Function cold start (median of 7)\n\nInit = process start → first `GET /invocation/next`; first event = process start → response posted. Ratio = first event ÷ spawning `/bin/true`.\n\n| function | binary bytes | init ms | first event ms | spawn `true` ms | ratio |\n|---|---:|---:|---:|---:|---:|\n");
    for r in &cold_rows {
        md.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} |\n",
            r["function"].as_str().unwrap_or(""),
            r["binary_bytes"],
            r["init_ms"].as_f64().unwrap_or(0.0),
            r["first_event_ms"].as_f64().unwrap_or(0.0),
            r["spawn_true_ms"].as_f64().unwrap_or(0.0),
            r["first_event_over_spawn"].as_f64().unwrap_or(0.0)
        ));
    }
    let out = root.join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&json!({"probe": probe_rows, "cold_start": cold_rows}))?,
    )?;
    print!("{md}");
    Ok(())
}
