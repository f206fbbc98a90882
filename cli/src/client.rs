//! HTTP client of the management API used by the CLI: asset calls, uploads with progress bars (single PUT or
//! multipart), waiting with a spinner, and the sample clip generator of `vodctl dev --sample`.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, token: Option<String>) -> Self {
        Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Endpoint and token from flags/environment, else from the running `vodctl dev` (`.build/local.env`).
    pub fn from_settings(endpoint: Option<String>, token: Option<String>) -> Result<Self> {
        let mut endpoint = endpoint;
        let mut token = token;
        if endpoint.is_none() || token.is_none() {
            if let Ok(root) = vod_local::stack::find_root() {
                if let Ok(text) = std::fs::read_to_string(root.join(".build/local.env")) {
                    for line in text.lines() {
                        match line.split_once('=') {
                            Some(("VOD_ENDPOINT", v)) if endpoint.is_none() => endpoint = Some(v.to_string()),
                            Some(("VOD_TOKEN", v)) if token.is_none() => token = Some(v.to_string()),
                            _ => {}
                        }
                    }
                }
            }
        }
        let endpoint = endpoint
            .ok_or_else(|| anyhow!("no API endpoint: pass --endpoint or set VOD_ENDPOINT (or run `vodctl dev`)"))?;
        Ok(Api::new(endpoint, token))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn json(resp: reqwest::Response) -> Result<Value> {
        let status = resp.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            resp.json().await.unwrap_or(Value::Null)
        };
        if !status.is_success() {
            let msg = body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("API answered {status}: {msg}");
        }
        Ok(body)
    }

    pub async fn get_asset(&self, id: &str) -> Result<Value> {
        Self::json(self.req(reqwest::Method::GET, &format!("/assets/{id}")).send().await?).await
    }

    pub async fn delete_asset(&self, id: &str) -> Result<()> {
        self.delete_path(&format!("/assets/{id}")).await
    }

    /// DELETE of any API path.
    pub async fn delete_path(&self, path: &str) -> Result<()> {
        Self::json(self.req(reqwest::Method::DELETE, path).send().await?)
            .await
            .map(|_| ())
    }

    pub async fn print_assets(&self, limit: u32) -> Result<()> {
        let page = Self::json(
            self.req(reqwest::Method::GET, &format!("/assets?limit={limit}"))
                .send()
                .await?,
        )
        .await?;
        println!("{:<36}  {:<9}  {:>9}  {:>11}  NAME", "ID", "STATE", "DURATION", "SIZE");
        for a in page["items"].as_array().into_iter().flatten() {
            let dur = a["media"]["duration_secs"]
                .as_f64()
                .map(|d| format!("{d:.2}s"))
                .unwrap_or_else(|| "-".into());
            let size = a["source"]["size"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<36}  {:<9}  {:>9}  {:>11}  {}",
                a["id"].as_str().unwrap_or(""),
                a["state"].as_str().unwrap_or(""),
                dur,
                size,
                a["name"].as_str().unwrap_or("")
            );
        }
        if let Some(next) = page["next"].as_str() {
            println!("(more: next={next})");
        }
        Ok(())
    }

    /// Creates an asset and uploads the file with a progress bar; returns the created asset. A multipart upload
    /// that was interrupted (connection dropped, process killed) is resumed: the same file (path, size and
    /// modification time) to the same endpoint continues the same upload, skipping the parts already stored, and
    /// the progress bar starts from them.
    pub async fn upload(&self, file: &Path, name: Option<&str>) -> Result<Value> {
        let meta = tokio::fs::metadata(file)
            .await
            .with_context(|| format!("reading {}", file.display()))?;
        let size = meta.len();
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{} has no usable file name", file.display()))?;
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let state_path = self.resume_state_path(file, &meta);
        if let Some(state) = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            match self.finish_multipart(file, size, &state, &bar).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(&state_path);
                    bar.finish_with_message(format!("uploaded {file_name} (resumed)"));
                    return Ok(state["asset"].clone());
                }
                Err(e) => {
                    // The upload cannot be continued (completed, aborted, expired): start over.
                    bar.println(format!("cannot resume the earlier upload ({e:#}); starting over"));
                    let _ = std::fs::remove_file(&state_path);
                    bar.set_position(0);
                }
            }
        }
        let created = Self::json(
            self.req(reqwest::Method::POST, "/assets")
                .json(&json!({"name": name, "file_name": file_name, "size": size}))
                .send()
                .await?,
        )
        .await?;
        bar.set_message(format!("uploading {file_name}"));
        let up = &created["upload"];
        match up["kind"].as_str() {
            Some("single") => {
                let url = up["url"].as_str().ok_or_else(|| anyhow!("upload URL missing"))?;
                self.put_range(url, file, 0, size, &bar).await?;
            }
            Some("multipart") => {
                // Remembered until the upload completes, so that an interrupted upload resumes.
                let state = json!({"asset": created["asset"], "upload": up});
                if let Some(dir) = state_path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::write(&state_path, serde_json::to_vec(&state)?)
                    .with_context(|| format!("writing {}", state_path.display()))?;
                self.finish_multipart(file, size, &state, &bar).await?;
                let _ = std::fs::remove_file(&state_path);
            }
            other => bail!("unknown upload kind {other:?}"),
        }
        bar.finish_with_message(format!("uploaded {file_name}"));
        Ok(created["asset"].clone())
    }

    /// Where an unfinished multipart upload of `file` to this endpoint is remembered: `$VODCTL_STATE_DIR`, else
    /// `$XDG_STATE_HOME/vodctl` or `~/.local/state/vodctl`, one file per (endpoint, path, size, mtime).
    fn resume_state_path(&self, file: &Path, meta: &std::fs::Metadata) -> PathBuf {
        let dir = std::env::var_os("VODCTL_STATE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("vodctl")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/vodctl")))
            .unwrap_or_else(|| std::env::temp_dir().join("vodctl"));
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity = format!("{}\n{}\n{}\n{mtime}", self.base, canonical.display(), meta.len());
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, identity.as_bytes());
        dir.join("uploads").join(format!("{id}.json"))
    }

    /// Uploads the parts of a multipart upload that are not stored yet (URLs fetched a page at a time), then
    /// completes it.
    async fn finish_multipart(&self, file: &Path, size: u64, state: &Value, bar: &ProgressBar) -> Result<()> {
        let up = &state["upload"];
        let upload_id = up["upload_id"].as_str().ok_or_else(|| anyhow!("upload_id missing"))?;
        let parts_path = up["parts_path"].as_str().ok_or_else(|| anyhow!("parts_path missing"))?;
        let complete_path = up["complete_path"]
            .as_str()
            .ok_or_else(|| anyhow!("complete_path missing"))?;
        let page = |from: u64, count: u64| {
            let path = format!(
                "{parts_path}?upload_id={}&size={size}&from={from}&count={count}",
                percent_encoding::utf8_percent_encode(upload_id, percent_encoding::NON_ALPHANUMERIC)
            );
            async move { Self::json(self.req(reqwest::Method::GET, &path).send().await?).await }
        };
        let first = page(1, 100).await?;
        let part_size = first["part_size"]
            .as_u64()
            .ok_or_else(|| anyhow!("part_size missing"))?;
        let part_count = first["part_count"]
            .as_u64()
            .ok_or_else(|| anyhow!("part_count missing"))?;
        let len_of = |n: u64| part_size.min(size.saturating_sub((n - 1) * part_size));
        // Parts already stored whole are kept.
        let mut etags: std::collections::BTreeMap<u64, String> = first["uploaded"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let n = p["part_number"].as_u64()?;
                (n >= 1 && n <= part_count && p["size"].as_u64() == Some(len_of(n)))
                    .then(|| (n, p["etag"].as_str().unwrap_or("").trim_matches('"').to_string()))
            })
            .collect();
        let stored: u64 = etags.keys().map(|&n| len_of(n)).sum();
        if !etags.is_empty() {
            bar.println(format!(
                "resuming: {} of {part_count} parts ({stored} bytes) already stored",
                etags.len()
            ));
        }
        bar.set_position(stored);
        let mut urls = first;
        let mut next = 1u64;
        while next <= part_count {
            for p in urls["parts"].as_array().into_iter().flatten() {
                let n = p["part_number"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("part_number missing"))?;
                if etags.contains_key(&n) {
                    continue;
                }
                let url = p["url"].as_str().ok_or_else(|| anyhow!("part url missing"))?;
                let etag = self.put_range(url, file, (n - 1) * part_size, len_of(n), bar).await?;
                etags.insert(n, etag);
            }
            next = urls["parts"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|p| p["part_number"].as_u64())
                .map_or(part_count + 1, |n| n + 1);
            if next <= part_count {
                urls = page(next, 1000).await?;
            }
        }
        let parts: Vec<Value> = etags
            .iter()
            .map(|(n, etag)| json!({"part_number": n, "etag": etag}))
            .collect();
        Self::json(
            self.req(reqwest::Method::POST, complete_path)
                .json(&json!({"upload_id": upload_id, "parts": parts}))
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// PUTs `len` bytes of `file` at `offset` to a presigned URL, streaming and advancing the bar; returns the ETag.
    async fn put_range(&self, url: &str, file: &Path, offset: u64, len: u64, bar: &ProgressBar) -> Result<String> {
        let mut f = tokio::fs::File::open(file).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let reader = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024);
        let progress = bar.clone();
        let stream = reader.map(move |chunk| {
            if let Ok(c) = &chunk {
                progress.inc(c.len() as u64);
            }
            chunk
        });
        let resp = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .context("upload request failed")?;
        if !resp.status().is_success() {
            bail!(
                "upload answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_matches('"')
            .to_string())
    }

    pub async fn create_job(&self, asset: &str, preset: &str) -> Result<Value> {
        Self::json(
            self.req(reqwest::Method::POST, &format!("/assets/{asset}/jobs"))
                .json(&json!({ "preset": preset }))
                .send()
                .await?,
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        Self::json(self.req(reqwest::Method::POST, path).json(body).send().await?).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value> {
        Self::json(self.req(reqwest::Method::PUT, path).json(body).send().await?).await
    }

    /// Publishes an asset: a streaming or download locator with its URLs.
    pub async fn create_locator(&self, body: &Value) -> Result<Value> {
        Self::json(self.req(reqwest::Method::POST, "/locators").json(body).send().await?).await
    }

    pub async fn get_locator(&self, id: &str) -> Result<Value> {
        Self::json(
            self.req(reqwest::Method::GET, &format!("/locators/{id}"))
                .send()
                .await?,
        )
        .await
    }

    pub async fn delete_locator(&self, id: &str) -> Result<()> {
        self.delete_path(&format!("/locators/{id}")).await
    }

    pub async fn list_locators(&self, asset: &str) -> Result<Value> {
        Self::json(
            self.req(reqwest::Method::GET, &format!("/assets/{asset}/locators"))
                .send()
                .await?,
        )
        .await
    }

    /// GET of any API path answering JSON.
    pub async fn get_path(&self, path: &str) -> Result<Value> {
        Self::json(self.req(reqwest::Method::GET, path).send().await?).await
    }

    /// GET of an API path answering text (captions).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let resp = self.req(reqwest::Method::GET, path).send().await?;
        if !resp.status().is_success() {
            return Self::json(resp).await.map(|v| v.to_string());
        }
        Ok(resp.text().await?)
    }

    pub async fn get_job(&self, id: &str) -> Result<Value> {
        Self::json(self.req(reqwest::Method::GET, &format!("/jobs/{id}")).send().await?).await
    }

    pub async fn print_presets(&self) -> Result<()> {
        let page = Self::json(self.req(reqwest::Method::GET, "/presets").send().await?).await?;
        for p in page["items"].as_array().into_iter().flatten() {
            println!(
                "{:<16} {}",
                p["name"].as_str().unwrap_or(""),
                p["description"].as_str().unwrap_or("")
            );
        }
        Ok(())
    }

    /// Shows a job's progress (percent of tasks done) until it ends.
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> Result<Value> {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let start = Instant::now();
        loop {
            let job = self.get_job(id).await?;
            let state = job["state"].as_str().unwrap_or("?").to_string();
            bar.set_position(job["progress"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "job {state} ({}/{} tasks)",
                job["tasks_done"], job["tasks_total"]
            ));
            if matches!(state.as_str(), "Finished" | "Error" | "Canceled") {
                bar.finish();
                return Ok(job);
            }
            if start.elapsed() > timeout {
                bar.abandon();
                bail!("job {id} still {state} after {}s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Polls the asset with a spinner until it leaves Created/Uploaded.
    pub async fn wait_probed(&self, id: &str, timeout: Duration) -> Result<Value> {
        let spinner = ProgressBar::new_spinner();
        spinner.enable_steady_tick(Duration::from_millis(120));
        let start = Instant::now();
        loop {
            let a = self.get_asset(id).await?;
            let state = a["state"].as_str().unwrap_or("?").to_string();
            spinner.set_message(format!("asset {id}: {state}"));
            if state == "Probed" || state == "Error" {
                spinner.finish_with_message(format!("asset {id}: {state}"));
                return Ok(a);
            }
            if start.elapsed() > timeout {
                spinner.abandon();
                bail!("asset {id} still {state} after {}s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// What the sample clip says (when espeak-ng is installed), so that indexing has speech to caption.
pub const SAMPLE_SPEECH: &str = "welcome to the video platform. this sample was uploaded, encoded to an adaptive \
                                 set, and indexed so that you can search for what was said.";

/// Generates an H.264/AAC sample clip with ffmpeg: colour bars with speech by espeak-ng (about 9 s) when it is
/// installed, else with a tone (6 s).
pub async fn make_sample(path: &Path) -> Result<PathBuf> {
    let speech = path.with_extension("speech.wav");
    let spoken = tokio::process::Command::new("espeak-ng")
        .args(["-v", "en-us+klatt2", "-s", "130", "-w"])
        .arg(&speech)
        .arg(SAMPLE_SPEECH)
        .status()
        .await
        .is_ok_and(|s| s.success());
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
    ]);
    if spoken {
        cmd.arg("-i")
            .arg(&speech)
            .args(["-af", "adelay=500,apad=pad_dur=1", "-shortest"]);
    } else {
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "6",
            "-shortest",
        ]);
    }
    cmd.args([
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-b:a", "96k",
    ]);
    let status = cmd
        .arg(path)
        .status()
        .await
        .context("running ffmpeg (install it: apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg failed to generate the sample");
    }
    Ok(path.to_path_buf())
}

/// Prints what a locator grants: manifest URLs and player links, or download URLs.
pub fn print_locator(loc: &Value, player_page: Option<&str>) {
    println!(
        "locator {} ({}, {} → {})",
        loc["id"].as_str().unwrap_or("?"),
        loc["kind"].as_str().unwrap_or("?"),
        loc["start"].as_str().unwrap_or("?"),
        loc["end"].as_str().unwrap_or("?")
    );
    if let Some(urls) = loc["urls"].as_object() {
        for k in ["hls", "dash", "hls_cmaf", "dash_cmaf"] {
            if let Some(u) = urls.get(k).and_then(Value::as_str) {
                println!("  {k:<10} {u}");
            }
        }
        let links = player_links(loc, player_page);
        for (name, url) in links {
            println!("  player {name:<8} {url}");
        }
    }
    for d in loc["downloads"].as_array().into_iter().flatten() {
        println!(
            "  {:<6} {}",
            d["rendition"].as_str().unwrap_or(""),
            d["url"].as_str().unwrap_or("")
        );
    }
}

/// Player page links of a streaming locator: from the API (hosted page configured), else the given page.
pub fn player_links(loc: &Value, player_page: Option<&str>) -> Vec<(String, String)> {
    if let Some(p) = loc["urls"]["player"].as_object() {
        return p
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|u| (k.clone(), u.to_string())))
            .collect();
    }
    let Some(page) = player_page else {
        return Vec::new();
    };
    let enc = |u: &str| percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string();
    let (hls, dash) = (
        loc["urls"]["hls"].as_str().unwrap_or(""),
        loc["urls"]["dash"].as_str().unwrap_or(""),
    );
    vec![
        ("hls.js".into(), format!("{page}?player=hls&src={}", enc(hls))),
        ("dash.js".into(), format!("{page}?player=dash&src={}", enc(dash))),
        ("shaka".into(), format!("{page}?player=shaka&src={}", enc(dash))),
    ]
}
