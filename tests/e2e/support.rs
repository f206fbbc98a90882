//! Test support: the emulator (started through infra/moto.sh), one isolated local stack per test (its own resource
//! prefix), media generated with ffmpeg, and small API helpers.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;
use vod_local::{LocalStack, LocalStackOptions};

pub const TOKEN: &str = "e2e-admin-token";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn moto_port() -> u16 {
    std::env::var("MOTO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4566)
}

pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}", moto_port())
}

/// Starts the emulator once per test process (idempotent: reuses a running one).
pub fn ensure_emulator() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let status = Command::new(root().join("infra/moto.sh"))
            .arg("start")
            .env("MOTO_PORT", moto_port().to_string())
            .status()
            .expect("run infra/moto.sh");
        assert!(status.success(), "the AWS emulator did not start");
    });
}

/// A unique, valid resource prefix for one test.
pub fn prefix(test: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t{}-{}", &id[..8], test.replace('_', "-"))
        .chars()
        .take(25)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

pub fn options(test: &str) -> LocalStackOptions {
    ensure_emulator();
    let mut o = LocalStackOptions::new(root(), endpoint(), &prefix(test));
    o.host.admin_token = Some(TOKEN.into());
    o.host.retry_after = Some(Duration::from_millis(0));
    o
}

pub async fn stack(test: &str) -> LocalStack {
    LocalStack::start(options(test)).await.expect("local stack starts")
}

/// [`stack`] with template parameters set.
pub async fn stack_with(test: &str, params: &[(&str, &str)]) -> LocalStack {
    let mut opts = options(test);
    for (k, v) in params {
        opts.params.insert((*k).into(), (*v).into());
    }
    LocalStack::start(opts).await.expect("local stack")
}

/// A scratch directory for one test's files.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vod-e2e-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub use vod_testkit::{ffmpeg, ffprobe, h264_aac_mp4, psnr};

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(stack: &LocalStack) -> Self {
        Api {
            base: stack.api_url(),
            http: reqwest::Client::new(),
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("API answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Uploads `file` (see [`Api::upload`]) and returns the asset's id.
    pub async fn upload_id(&self, file: &Path) -> String {
        self.upload(file).await.expect("upload")["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Starts a job of `preset` on asset `id` (201 expected); returns the job.
    pub async fn start_job(&self, id: &str, preset: &str) -> Value {
        let (s, job) = self
            .call(
                Method::POST,
                &format!("/assets/{id}/jobs"),
                Some(serde_json::json!({ "preset": preset })),
            )
            .await;
        assert_eq!(s, 201, "{job}");
        job
    }

    /// A scenario fixture: uploads `file`, waits until it is probed, encodes it with `preset` and waits until the
    /// job is Finished (within 600 s); returns the asset's id.
    pub async fn encoded(&self, file: &Path, preset: &str) -> String {
        let id = self.upload_id(file).await;
        assert_eq!(self.wait_final(&id).await["state"], "Probed");
        let job = self.start_job(&id, preset).await;
        let done = wait_job(self, job["id"].as_str().expect("job"), 600).await;
        assert_eq!(done["state"], "Finished", "{done}");
        id
    }

    /// Replaces asset `id`'s delivery policies (200 expected); returns the answer (with its content keys).
    pub async fn set_delivery_policies(&self, id: &str, policies: Value) -> Value {
        let (s, v) = self
            .call(
                Method::PUT,
                &format!("/assets/{id}/delivery-policies"),
                Some(serde_json::json!({ "policies": policies })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Creates a locator from `body` (201 expected); returns it.
    pub async fn locator(&self, body: Value) -> Value {
        let (s, loc) = self.call(Method::POST, "/locators", Some(body)).await;
        assert_eq!(s, 201, "{loc}");
        loc
    }

    /// Creates an asset for `file` and uploads it through the returned URL(s).
    pub async fn upload(&self, file: &Path) -> Result<Value> {
        let bytes = std::fs::read(file)?;
        let name = file.file_name().and_then(|n| n.to_str()).context("file name")?;
        let (status, created) = self
            .call(
                Method::POST,
                "/assets",
                Some(serde_json::json!({"file_name": name, "size": bytes.len()})),
            )
            .await;
        if status != 201 {
            bail!("create answered {status}: {created}");
        }
        let up = &created["upload"];
        match up["kind"].as_str() {
            Some("single") => {
                let r = self
                    .http
                    .put(up["url"].as_str().context("url")?)
                    .body(bytes)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("PUT answered {}", r.status());
                }
            }
            Some("multipart") => {
                let part_size = up["part_size"].as_u64().context("part_size")? as usize;
                let mut parts = Vec::new();
                for p in up["parts"].as_array().context("parts")? {
                    let n = p["part_number"].as_u64().context("n")? as usize;
                    let chunk = bytes[(n - 1) * part_size..(n * part_size).min(bytes.len())].to_vec();
                    let r = self
                        .http
                        .put(p["url"].as_str().context("url")?)
                        .body(chunk)
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("part PUT answered {}", r.status());
                    }
                    let etag = r
                        .headers()
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string();
                    parts.push(serde_json::json!({"part_number": n, "etag": etag}));
                }
                let (s, body) = self
                    .call(
                        Method::POST,
                        up["complete_path"].as_str().context("complete_path")?,
                        Some(serde_json::json!({"upload_id": up["upload_id"], "parts": parts})),
                    )
                    .await;
                if s != 200 {
                    bail!("complete answered {s}: {body}");
                }
            }
            other => bail!("unknown upload kind {other:?}"),
        }
        Ok(created["asset"].clone())
    }

    /// Polls an asset until it reaches a final state (Probed or Error).
    pub async fn wait_final(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, a) = self.call(Method::GET, &format!("/assets/{id}"), None).await;
            if status == 200 && (a["state"] == "Probed" || a["state"] == "Error") {
                return a;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "asset {id} not final in 60 s: {status} {a}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn list_all(&self) -> Vec<Value> {
        let (status, page) = self.call(Method::GET, "/assets?limit=1000", None).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `n` assets exist and all are final.
    pub async fn wait_assets(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let all = self.list_all().await;
            if all.len() >= n && all.iter().all(|a| a["state"] == "Probed" || a["state"] == "Error") {
                return all;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "expected {n} final assets, have {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// ffprobe's view of a file: (width, height, duration seconds, frame rate).
pub fn ffprobe_video(file: &Path) -> (u64, u64, f64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,r_frame_rate:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = &v["streams"][0];
    let rate = s["r_frame_rate"].as_str().unwrap_or("0/1");
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let fps = n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0);
    let dur = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        s["width"].as_u64().unwrap_or(0),
        s["height"].as_u64().unwrap_or(0),
        dur,
        fps,
    )
}

/// Polls a job until it is Finished, Error or Canceled; progress never goes back.
pub async fn wait_job(api: &Api, id: &str, secs: u64) -> Value {
    let start = Instant::now();
    let mut last_progress = 0;
    loop {
        let (status, job) = api.call(Method::GET, &format!("/jobs/{id}"), None).await;
        assert_eq!(status, 200, "{job}");
        let p = job["progress"].as_u64().unwrap_or(0);
        assert!(p >= last_progress, "progress never goes back ({last_progress} → {p})");
        last_progress = p;
        if matches!(job["state"].as_str(), Some("Finished" | "Error" | "Canceled")) {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "job {id} not done in {secs} s: {job}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Plays a URL in headless Chromium with one of the JS players (infra/player/play.mjs), with a bearer token for key
/// and licence requests and a Clear Key licence URL if given; panics unless it played. Returns the driver's report.
pub fn play(player: &str, src: &str, token: Option<&str>, license: Option<&str>) -> Value {
    play_with(player, src, token, license, &[])
}

/// [`play`] with more driver options (e.g. `--text 0` to turn captions on, `--seconds 4`).
pub fn play_with(player: &str, src: &str, token: Option<&str>, license: Option<&str>, extra: &[&str]) -> Value {
    assert!(
        root().join("infra/player/dist/index.html").is_file(),
        "the player page is not built: run `npm ci && npm run build` in infra/player (infra/test.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(root().join("infra/player/play.mjs")).args([
        "--player",
        player,
        "--src",
        src,
        "--seconds",
        "2",
        "--timeout",
        "60",
    ]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    if let Some(l) = license {
        cmd.args(["--license", l]);
    }
    cmd.args(extra);
    let out = cmd.output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("{}");
    let report: Value = serde_json::from_str(line).unwrap_or(serde_json::json!({"ok": false, "raw": stdout}));
    assert!(
        out.status.success() && report["ok"] == true,
        "{player} did not play {src}: {report}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Downloads an object of the local stack's S3.
pub async fn download(stack: &vod_local::LocalStack, bucket: &str, key: &str) -> Vec<u8> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .build(),
    );
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

/// A rendition's progressive MP4 as the packager serves it, from the local stack's S3: the runs its description
/// (`progressive.json`) lists in its pages of runs — the head, then the samples in the segments — back to back.
pub async fn progressive_file(stack: &vod_local::LocalStack, bucket: &str, key: &str) -> Vec<u8> {
    let file: vod_domain::ProgressiveFile =
        serde_json::from_slice(&download(stack, bucket, key).await).expect("progressive description");
    let pages = file.pages.as_ref().expect("a description with pages of runs");
    let all = download(stack, bucket, &pages.key).await;
    let mut out = Vec::with_capacity(file.size as usize);
    for p in &pages.pages {
        assert_eq!(
            out.len() as u64,
            p.offset,
            "each page starts where the previous one ended"
        );
        let runs: Vec<vod_domain::ProgressiveRun> =
            serde_json::from_slice(&all[p.at as usize..(p.at + p.len) as usize]).expect("a page of runs");
        for r in &runs {
            let object = download(stack, bucket, &r.key).await;
            out.extend_from_slice(&object[r.at as usize..(r.at + r.size) as usize]);
        }
    }
    assert_eq!(out.len() as u64, file.size, "the description's size");
    out
}

/// ffprobe JSON (streams with counted frames, format) of a file.
pub fn probe_json(file: &Path) -> Value {
    ffprobe(&[
        "-count_frames",
        "-show_streams",
        "-show_format",
        file.to_str().expect("path"),
    ])
}

/// The first stream of a kind in ffprobe JSON.
pub fn stream<'a>(p: &'a Value, kind: &str) -> Option<&'a Value> {
    p["streams"].as_array()?.iter().find(|s| s["codec_type"] == kind)
}

/// Stops a stack after checking that no function sent an AWS request its role in template.yaml refuses (the local
/// host enforces each function's policies, `vod_local::iam`).
pub async fn finish(stack: LocalStack) {
    let denied = stack.host.denials.lock().map(|d| d.clone()).unwrap_or_default();
    stack.shutdown().await;
    assert!(
        denied.is_empty(),
        "requests the functions' roles refuse (function, action, resource): {denied:?}"
    );
}

/// Rendition `r` (an item of an asset's `output.renditions`) of the output in `bucket`, assembled as the packager
/// serves its progressive MP4, written to `dir/{label}-{name}.mp4`: the file and ffprobe's view of it (frames
/// counted).
pub async fn rendition_file(
    stack: &vod_local::LocalStack,
    dir: &Path,
    bucket: &str,
    r: &Value,
    label: &str,
) -> (std::path::PathBuf, Value) {
    let file = dir.join(format!("{label}-{}.mp4", r["name"].as_str().unwrap_or("r")));
    std::fs::write(
        &file,
        progressive_file(stack, bucket, r["progressive"].as_str().expect("progressive")).await,
    )
    .expect("write");
    let p = probe_json(&file);
    (file, p)
}

/// The content version (`v.` and 16 hex digits) the first versioned URI of a manifest carries.
pub fn content_version(manifest: &str) -> String {
    manifest
        .match_indices("v.")
        .map(|(i, _)| &manifest[i..])
        .find(|v| v.len() >= 18 && v.as_bytes()[2..18].iter().all(u8::is_ascii_hexdigit))
        .map(|v| v[..18].to_string())
        .unwrap_or_else(|| panic!("no content version in {manifest}"))
}
