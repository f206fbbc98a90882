//! `vodctl`: command-line client of the VoD platform. `dev` runs the local stack in the foreground; the other
//! commands talk to the management API (endpoint and token from flags, the environment, or the running dev stack).
use vodctl::client;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vod_local::{LocalStack, LocalStackOptions};

#[derive(Parser)]
#[command(
    name = "vodctl",
    version,
    about = "Serverless video-on-demand platform: local stack and API client"
)]
struct Cli {
    /// Management API base URL.
    #[arg(long, env = "VOD_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// Bearer token of the management API.
    #[arg(long, env = "VOD_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform locally in the foreground: AWS emulator, resources from template.yaml, functions, API.
    Dev {
        /// Emulator port.
        #[arg(long, env = "MOTO_PORT", default_value_t = 4566)]
        aws_port: u16,
        /// Port of the local management API.
        #[arg(long, env = "VOD_API_PORT", default_value_t = 3000)]
        api_port: u16,
        /// Resource name prefix (template parameter ResourcePrefix).
        #[arg(long, env = "VOD_PREFIX", default_value = "vod")]
        prefix: String,
        /// Generate a sample clip with ffmpeg, upload it through the API and wait until it is probed.
        #[arg(long)]
        sample: bool,
        /// Stop after the sample is processed instead of serving until Ctrl-C.
        #[arg(long, requires = "sample")]
        exit: bool,
        /// Preset used to encode the sample.
        #[arg(long, default_value = "tiny-indexed")]
        sample_preset: String,
    },
    /// Upload a media file as a new asset (multipart for large files).
    Upload {
        file: PathBuf,
        /// Asset name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Wait until the asset is probed (or fails).
        #[arg(long)]
        wait: bool,
    },
    /// List assets.
    Assets {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one asset (state, source file, probe results).
    Asset { id: String },
    /// Delete an asset with its files and records.
    Delete { id: String },
    /// Start an encoding job for an asset.
    Encode {
        asset: String,
        /// Preset name (`vodctl presets` lists them).
        #[arg(long, default_value = "adaptive")]
        preset: String,
        /// Show progress until the job ends.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job with its tasks.
    Job { id: String },
    /// Index an asset's speech (captions, transcript, search); same as `encode ASSET --preset index-speech`.
    Index {
        asset: String,
        /// Indexing preset (an index-only or encode-and-index preset).
        #[arg(long, default_value = "index-speech")]
        preset: String,
        /// Show progress until the job ends.
        #[arg(long)]
        wait: bool,
    },
    /// Print an asset's captions (WebVTT, or TTML with --ttml) or its transcript (--transcript, JSON); add a
    /// sidecar caption file (--add FILE --language fr --label Français), list the tracks (--list), print one
    /// (--track ID) or delete one (--delete ID).
    Captions {
        asset: String,
        #[arg(long, conflicts_with = "transcript")]
        ttml: bool,
        #[arg(long)]
        transcript: bool,
        /// A WebVTT, SRT or TTML file to add as a caption track (needs --language and --label).
        #[arg(long, requires_all = ["language", "label"], conflicts_with_all = ["list", "delete", "track", "transcript"])]
        add: Option<PathBuf>,
        #[arg(long)]
        language: Option<String>,
        #[arg(long)]
        label: Option<String>,
        #[arg(long, conflicts_with_all = ["delete", "track", "transcript"])]
        list: bool,
        #[arg(long, conflicts_with_all = ["track", "transcript"])]
        delete: Option<String>,
        #[arg(long, conflicts_with = "transcript")]
        track: Option<String>,
    },
    /// Find where words are spoken: in one asset (--asset) or across all indexed assets.
    Search {
        /// A word or a phrase.
        query: String,
        #[arg(long)]
        asset: Option<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// List encoding presets.
    Presets,
    /// Publish an encoded asset: create a locator and print its URLs.
    Publish {
        asset: String,
        /// Download (progressive MP4s) instead of streaming (HLS and DASH).
        #[arg(long)]
        download: bool,
        /// Lifetime in seconds (default: 24 hours).
        #[arg(long)]
        duration: Option<u64>,
        /// Filters applied to every manifest of the locator (asset or global filter names).
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
    /// List an asset's locators.
    Locators { asset: String },
    /// Delete a locator (its URLs stop working within the manifest TTL).
    Unpublish { locator: String },
    /// Print links that play a streaming locator in hls.js, dash.js and shaka-player.
    Play { locator: String },
    /// Create or replace a key policy: open, or a JWT token restriction (HS256/384/512 shared secret).
    KeyPolicy {
        name: String,
        /// Anyone may receive the keys (no token).
        #[arg(long, conflicts_with_all = ["issuer", "audience"])]
        open: bool,
        #[arg(long, requires = "audience")]
        issuer: Option<String>,
        #[arg(long, requires = "issuer")]
        audience: Option<String>,
        /// Environment variable holding the base64 HMAC secret (≥ 256 bits); secrets never go on the command line.
        #[arg(long, default_value = "VOD_TOKEN_SECRET")]
        secret_env: String,
        /// Claims a token must carry: `name` (must exist) or `name=value`.
        #[arg(long = "require")]
        required: Vec<String>,
        /// Claim that binds a token to one content key id.
        #[arg(long)]
        key_id_claim: Option<String>,
    },
    /// Set how an asset is delivered per protocol (clear, aes128, cenc, cbcs); protected protocols use KEY_POLICY.
    Protect {
        asset: String,
        #[arg(long, value_parser = ["clear", "aes128", "cenc", "cbcs", "blocked"], default_value = "clear")]
        hls: String,
        #[arg(long, value_parser = ["clear", "cenc", "cbcs", "blocked"], default_value = "clear")]
        dash: String,
        /// Allow progressive download (always clear).
        #[arg(long)]
        download: bool,
        #[arg(long)]
        key_policy: Option<String>,
        /// Signal Widevine with this licence server URL (CENC).
        #[arg(long)]
        widevine: Option<String>,
        /// Signal PlayReady with this licence server URL (CENC).
        #[arg(long)]
        playready: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    vod_app::telemetry::init_pretty("info,aws_config=warn,aws_smithy_runtime=warn");
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dev {
            aws_port,
            api_port,
            prefix,
            sample,
            exit,
            sample_preset,
        } => {
            let sample = sample.then_some(sample_preset);
            dev(aws_port, api_port, &prefix, cli.token, sample, exit).await
        }
        cmd => {
            let api = client::Api::from_settings(cli.endpoint, cli.token)?;
            match cmd {
                Command::Upload { file, name, wait } => {
                    let asset = api.upload(&file, name.as_deref()).await?;
                    let id = asset["id"].as_str().unwrap_or_default().to_string();
                    println!("asset {id} uploaded");
                    if wait {
                        let done = api.wait_probed(&id, Duration::from_secs(300)).await?;
                        println!("{}", serde_json::to_string_pretty(&done)?);
                        if done["state"] == "Error" {
                            bail!(
                                "asset {id} failed: {}",
                                done["error"].as_str().unwrap_or("unknown reason")
                            );
                        }
                    }
                    Ok(())
                }
                Command::Assets { limit } => api.print_assets(limit).await,
                Command::Asset { id } => {
                    println!("{}", serde_json::to_string_pretty(&api.get_asset(&id).await?)?);
                    Ok(())
                }
                Command::Delete { id } => {
                    api.delete_asset(&id).await?;
                    println!("asset {id} deleted");
                    Ok(())
                }
                Command::Index { asset, preset, wait } | Command::Encode { asset, preset, wait } => {
                    let job = api.create_job(&asset, &preset).await?;
                    let id = job["id"].as_str().unwrap_or_default().to_string();
                    println!(
                        "job {id} {} ({} tasks)",
                        job["state"].as_str().unwrap_or("?"),
                        job["tasks_total"]
                    );
                    if wait {
                        let done = api.wait_job(&id, Duration::from_secs(24 * 3600)).await?;
                        if done["state"] != "Finished" {
                            bail!(
                                "job {id} ended {}: {}",
                                done["state"],
                                done["error"].as_str().unwrap_or("")
                            );
                        }
                    }
                    Ok(())
                }
                Command::Captions {
                    asset,
                    ttml,
                    transcript,
                    add,
                    language,
                    label,
                    list,
                    delete,
                    track,
                } => {
                    let tracks = format!("/assets/{asset}/captions");
                    if let Some(file) = add {
                        let text =
                            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
                        let body = serde_json::json!({"language": language, "label": label, "text": text});
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&api.post_json(&tracks, &body).await?)?
                        );
                    } else if list {
                        println!("{}", serde_json::to_string_pretty(&api.get_path(&tracks).await?)?);
                    } else if let Some(t) = delete {
                        api.delete_path(&format!("{tracks}/{t}")).await?;
                    } else if let Some(t) = track {
                        let format = if ttml { "ttml" } else { "vtt" };
                        print!("{}", api.get_text(&format!("{tracks}/{t}?format={format}")).await?);
                    } else if transcript {
                        let t = api.get_path(&format!("/assets/{asset}/transcript")).await?;
                        println!("{}", serde_json::to_string_pretty(&t)?);
                    } else {
                        let ext = if ttml { "ttml" } else { "vtt" };
                        print!("{}", api.get_text(&format!("/assets/{asset}/captions.{ext}")).await?);
                    }
                    Ok(())
                }
                Command::Search { query, asset, limit } => {
                    let q =
                        percent_encoding::utf8_percent_encode(&query, percent_encoding::NON_ALPHANUMERIC).to_string();
                    let results = match &asset {
                        Some(a) => {
                            let one = api.get_path(&format!("/assets/{a}/search?q={q}&limit={limit}")).await?;
                            vec![one]
                        }
                        None => api.get_path(&format!("/search?q={q}&limit={limit}")).await?["items"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    let mut any = false;
                    for r in &results {
                        for m in r["matches"].as_array().into_iter().flatten() {
                            any = true;
                            let at = m["start"].as_f64().unwrap_or(0.0);
                            println!(
                                "{}  {:02}:{:02}:{:05.2}  {}  (\"{}\", confidence {:.2})",
                                r["asset_id"].as_str().unwrap_or(""),
                                (at / 3600.0) as u64,
                                ((at / 60.0) as u64) % 60,
                                at % 60.0,
                                m["context"].as_str().unwrap_or(""),
                                m["text"].as_str().unwrap_or(""),
                                m["confidence"].as_f64().unwrap_or(0.0)
                            );
                        }
                    }
                    if !any {
                        println!("no match for {query:?}");
                    }
                    Ok(())
                }
                Command::Job { id } => {
                    println!("{}", serde_json::to_string_pretty(&api.get_job(&id).await?)?);
                    Ok(())
                }
                Command::Presets => api.print_presets().await,
                Command::Publish {
                    asset,
                    download,
                    duration,
                    filters,
                } => {
                    let mut body = serde_json::json!({
                        "asset": asset,
                        "kind": if download { "download" } else { "streaming" },
                        "filters": filters,
                    });
                    if let Some(d) = duration {
                        body["duration_secs"] = d.into();
                    }
                    let loc = api.create_locator(&body).await?;
                    client::print_locator(&loc, local_player_page().as_deref());
                    Ok(())
                }
                Command::Locators { asset } => {
                    for l in api.list_locators(&asset).await?["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        client::print_locator(l, local_player_page().as_deref());
                    }
                    Ok(())
                }
                Command::Unpublish { locator } => {
                    api.delete_locator(&locator).await?;
                    println!("locator {locator} deleted");
                    Ok(())
                }
                Command::KeyPolicy {
                    name,
                    open,
                    issuer,
                    audience,
                    secret_env,
                    required,
                    key_id_claim,
                } => {
                    let option = if open {
                        serde_json::json!({"restriction": "open"})
                    } else {
                        let (Some(issuer), Some(audience)) = (issuer, audience) else {
                            bail!("give --open, or --issuer and --audience for a token restriction");
                        };
                        let secret = std::env::var(&secret_env)
                            .with_context(|| format!("set {secret_env} to the base64 token secret"))?;
                        let claims: Vec<serde_json::Value> = required
                            .iter()
                            .map(|r| match r.split_once('=') {
                                Some((c, v)) => serde_json::json!({"claim": c, "value": v}),
                                None => serde_json::json!({"claim": r}),
                            })
                            .collect();
                        let mut o = serde_json::json!({"restriction": "token", "issuer": issuer, "audience": audience,
                            "primary_key": {"type": "symmetric", "key": secret}, "required_claims": claims});
                        if let Some(c) = key_id_claim {
                            o["key_id_claim"] = c.into();
                        }
                        o
                    };
                    let stored = api
                        .post_json("/key-policies", &serde_json::json!({"name": name, "options": [option]}))
                        .await?;
                    println!("{}", serde_json::to_string_pretty(&stored)?);
                    Ok(())
                }
                Command::Protect {
                    asset,
                    hls,
                    dash,
                    download,
                    key_policy,
                    widevine,
                    playready,
                } => {
                    let mut drm = vec![serde_json::json!({"system": "clearkey"})];
                    if let Some(u) = widevine {
                        drm.push(serde_json::json!({"system": "widevine", "license_url": u}));
                    }
                    if let Some(u) = playready {
                        drm.push(serde_json::json!({"system": "playready", "license_url": u}));
                    }
                    let mut policies = Vec::new();
                    for (protocol, protection) in [("hls", hls.as_str()), ("dash", dash.as_str())] {
                        let p = match protection {
                            "blocked" => continue,
                            "clear" => serde_json::json!({"protocols": [protocol], "protection": "clear"}),
                            "aes128" => serde_json::json!({"protocols": [protocol], "protection": "aes128",
                                "key_policy": key_policy}),
                            scheme => serde_json::json!({"protocols": [protocol], "protection": scheme,
                                "key_policy": key_policy, "drm": drm}),
                        };
                        policies.push(p);
                    }
                    if download {
                        policies.push(serde_json::json!({"protocols": ["progressive"], "protection": "clear"}));
                    }
                    let out = api
                        .put_json(
                            &format!("/assets/{asset}/delivery-policies"),
                            &serde_json::json!({"policies": policies}),
                        )
                        .await?;
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    Ok(())
                }
                Command::Play { locator } => {
                    let loc = api.get_locator(&locator).await?;
                    if loc["kind"] != "streaming" {
                        bail!("locator {locator} is a download locator; `vodctl locators` lists its URLs");
                    }
                    let links = client::player_links(&loc, local_player_page().as_deref());
                    if links.is_empty() {
                        bail!("no player page: build it (cd infra/player && npm ci && npm run build) or deploy with PlayerPageUrl");
                    }
                    for (name, url) in links {
                        println!("{name:<8} {url}");
                    }
                    Ok(())
                }
                Command::Dev { .. } => unreachable!("handled above"),
            }
        }
    }
}

/// The built player page of this checkout, as a file URL (used when the API has no hosted page configured).
fn local_player_page() -> Option<String> {
    let root = vod_local::stack::find_root().ok()?;
    let page = root.join("infra/player/dist/index.html");
    page.is_file().then(|| format!("file://{}", page.display()))
}

async fn dev(
    aws_port: u16,
    api_port: u16,
    prefix: &str,
    token: Option<String>,
    sample: Option<String>,
    exit: bool,
) -> Result<()> {
    let root = vod_local::stack::find_root()?;
    let status = tokio::process::Command::new(root.join("infra/moto.sh"))
        .arg("start")
        .env("MOTO_PORT", aws_port.to_string())
        .status()
        .await
        .context("starting the AWS emulator (infra/moto.sh)")?;
    if !status.success() {
        bail!("the AWS emulator did not start (infra/moto.sh start)");
    }
    let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut opts = LocalStackOptions::new(&root, format!("http://127.0.0.1:{aws_port}"), prefix);
    opts.api_addr = ([127, 0, 0, 1], api_port).into();
    opts.host.admin_token = Some(token.clone());
    // The gateway serves the built player page under /player/ and the API links to it.
    let player_dir = root.join("infra/player/dist");
    if player_dir.join("index.html").is_file() {
        opts.static_dir = Some(player_dir);
        opts.params.insert(
            "PlayerPageUrl".into(),
            format!("https://{}/player/index.html", vod_local::template::LOCAL_CDN_HOST),
        );
    } else {
        println!("(no player page: build it with `cd infra/player && npm ci && npm run build`)");
    }
    let stack = LocalStack::start(opts).await?;
    let endpoint = stack.api_url();
    let env_file = root.join(".build/local.env");
    std::fs::create_dir_all(root.join(".build"))?;
    std::fs::write(&env_file, format!("VOD_ENDPOINT={endpoint}\nVOD_TOKEN={token}\n"))?;
    println!("local stack running");
    println!(
        "  API:          {endpoint}   (token in {}; OpenAPI at {endpoint}/openapi.json)",
        env_file.display()
    );
    println!("  upload bucket {}", stack.bucket("UploadBucket").unwrap_or("?"));
    println!("  media bucket  {}", stack.bucket("MediaBucket").unwrap_or("?"));
    let result = async {
        if let Some(preset) = sample {
            let file = client::make_sample(&root.join(".build/sample.mp4")).await?;
            let api = client::Api::new(endpoint.clone(), Some(token.clone()));
            let asset = api.upload(&file, Some("sample")).await?;
            let id = asset["id"].as_str().unwrap_or_default().to_string();
            let done = api.wait_probed(&id, Duration::from_secs(120)).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            if done["state"] != "Probed" {
                bail!("the sample was not probed: {}", done["error"]);
            }
            println!(
                "sample asset {id} is {}; encoding it with preset {preset}",
                done["state"].as_str().unwrap_or("?")
            );
            let job = api.create_job(&id, &preset).await?;
            let job_id = job["id"].as_str().unwrap_or_default().to_string();
            let done = api.wait_job(&job_id, Duration::from_secs(1800)).await?;
            if done["state"] != "Finished" {
                bail!("the sample's job ended {}: {}", done["state"], done["error"]);
            }
            let asset = api.get_asset(&id).await?;
            println!(
                "sample asset {id} is {}: renditions",
                asset["state"].as_str().unwrap_or("?")
            );
            for r in asset["output"]["renditions"].as_array().into_iter().flatten() {
                println!(
                    "  {:<6} {}x{}  {:>6} kb/s  {}  s3://{}/{}",
                    r["name"].as_str().unwrap_or(""),
                    r["width"],
                    r["height"],
                    r["bitrate"].as_u64().unwrap_or(0) / 1000,
                    r["codecs"].as_str().unwrap_or(""),
                    asset["output"]["bucket"].as_str().unwrap_or(""),
                    r["progressive"].as_str().unwrap_or("")
                );
            }
            if let Some(c) = asset.get("captions").filter(|c| !c.is_null()) {
                println!(
                    "sample indexed: {} words, keywords {}; try `vodctl captions {id}` and `vodctl search sample`",
                    c["words"], c["keywords"]
                );
            }
            let loc = api
                .create_locator(&serde_json::json!({"asset": id, "kind": "streaming"}))
                .await?;
            println!("sample published:");
            client::print_locator(&loc, local_player_page().as_deref());
        }
        if !exit {
            println!("press Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
        }
        Ok(())
    }
    .await;
    stack.shutdown().await;
    let _ = std::fs::remove_file(&env_file);
    println!("local stack stopped (the emulator keeps running: infra/moto.sh stop)");
    result
}
