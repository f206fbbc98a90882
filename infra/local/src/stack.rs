//! The whole local stack in one value: emulator endpoint, resources provisioned from template.yaml under a
//! resource prefix (one per test gives isolation), the function host and the HTTP gateway.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::info;

use crate::gateway::{self, Route};
use crate::host::{FunctionHost, HostOptions};
use crate::provision::{provision, QueueUrls};
use crate::template::{StackSpec, Template};

#[derive(Debug, Clone)]
pub struct LocalStackOptions {
    /// Repository root (where template.yaml is).
    pub root: PathBuf,
    /// The emulator's endpoint, e.g. `http://127.0.0.1:4566`.
    pub endpoint: String,
    pub region: String,
    /// Template parameters (e.g. `ResourcePrefix`).
    pub params: BTreeMap<String, String>,
    /// Where the gateway listens; port 0 picks a free one.
    pub api_addr: SocketAddr,
    pub host: HostOptions,
    /// A folder the gateway serves under `/player/` (the built player page), if any.
    pub static_dir: Option<PathBuf>,
}

impl LocalStackOptions {
    pub fn new(root: impl Into<PathBuf>, endpoint: impl Into<String>, prefix: &str) -> Self {
        let mut params = BTreeMap::new();
        params.insert("ResourcePrefix".to_string(), prefix.to_string());
        LocalStackOptions {
            root: root.into(),
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            params,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            host: HostOptions::default(),
            static_dir: None,
        }
    }
}

/// SDK configuration for the emulator: endpoint override, fixed region and throwaway credentials.
pub async fn emulator_sdk_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "vod-local",
        ))
        .load()
        .await
}

/// A running local stack.
pub struct LocalStack {
    pub spec: StackSpec,
    pub sdk: aws_config::SdkConfig,
    pub queue_urls: QueueUrls,
    pub api_addr: SocketAddr,
    pub host: FunctionHost,
    gateway: tokio::task::JoinHandle<()>,
}

impl LocalStack {
    /// Reads the template, provisions its resources and starts the functions.
    pub async fn start(opts: LocalStackOptions) -> Result<Self> {
        let template = Template::load(&opts.root.join("template.yaml"))?;
        let mut spec = template.resolve(&opts.params, &opts.region)?;
        let sdk = emulator_sdk_config(&opts.endpoint, &opts.region).await;
        let queue_urls = provision(&sdk, &spec)
            .await
            .with_context(|| format!("provisioning the stack on {}", opts.endpoint))?;
        crate::provision::provision_distributions(&sdk, &mut spec)
            .await
            .with_context(|| format!("provisioning the CDN on {}", opts.endpoint))?;
        // The functions name a distribution by the id the template gives it; here that is the emulator's.
        for f in &mut spec.functions {
            for v in f.environment.values_mut() {
                if let Some((_, Some(id))) = spec.distributions.iter().find(|(name, _)| name == v) {
                    *v = id.clone();
                }
            }
        }
        let listener = gateway::bind(opts.api_addr)
            .await
            .with_context(|| format!("binding the API gateway on {}", opts.api_addr))?;
        let api_addr = listener.local_addr()?;
        // The gateway stands in for the CDN too: CDN URLs in the functions' configuration point at it.
        let cdn = format!("https://{}", crate::template::LOCAL_CDN_HOST);
        for f in &mut spec.functions {
            for v in f.environment.values_mut() {
                if v.starts_with(&cdn) {
                    *v = v.replacen(&cdn, &format!("http://{api_addr}"), 1);
                }
                // Layers carry Debian's files (infra/layers/*/Makefile): here they are where Debian installed them.
                if let Some(rest) = v.strip_prefix("/opt/share/") {
                    *v = format!("/usr/share/{rest}");
                }
            }
        }
        let host = FunctionHost::start(&sdk, &spec, &queue_urls, &opts.host)?;
        let mut routes = Vec::new();
        for f in &spec.functions {
            for r in &f.http_routes {
                if let Some(func) = host.functions.get(&f.logical_id) {
                    routes.push(Route::new(r.clone(), func.clone()));
                }
            }
        }
        let gateway = tokio::spawn(gateway::serve(
            listener,
            routes,
            opts.static_dir.clone(),
            host.stop_signal(),
        ));
        info!(api = %format!("http://{api_addr}"), "local stack running");
        Ok(LocalStack {
            spec,
            sdk,
            queue_urls,
            api_addr,
            host,
            gateway,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.spec
            .buckets
            .iter()
            .find(|b| b.logical_id == logical_id)
            .map(|b| b.name.as_str())
    }

    /// Stops the gateway and the pollers.
    pub async fn shutdown(self) {
        self.host.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gateway).await;
    }
}

/// The repository root: `VOD_ROOT`, or the nearest ancestor of the current directory holding template.yaml.
pub fn find_root() -> Result<PathBuf> {
    if let Ok(r) = std::env::var("VOD_ROOT") {
        return Ok(PathBuf::from(r));
    }
    let mut dir: &Path = &std::env::current_dir()?;
    loop {
        if dir.join("template.yaml").is_file() {
            return Ok(dir.to_path_buf());
        }
        dir = dir
            .parent()
            .context("no template.yaml in this directory or above (set VOD_ROOT)")?;
    }
}
