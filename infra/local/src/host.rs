//! Local function host: runs each function of the template on the handler its Lambda runs. SQS-triggered functions
//! get pollers that behave like Lambda's event source (batch size, visibility timeout, partial batch failure
//! reports, retries until the queue's redrive policy moves a message to its dead-letter queue); HTTP API functions
//! get requests from the gateway as API Gateway events.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tokio::sync::watch;
use tracing::{error, info, warn, Instrument};
use vod_app::{AppConfig, AppContext};

use crate::iam::{Arns, Denials, RoleClient};
use crate::provision::QueueUrls;

/// What the host enforces IAM with.
struct Iam {
    arns: Arns,
    denials: Denials,
}
use crate::template::{FunctionSpec, SqsEventSpec, StackSpec};

/// How the host runs functions.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Bearer token the management API requires (stands in for IAM auth locally).
    pub admin_token: Option<String>,
    /// Locally, a failed message may become visible again sooner than the queue's visibility timeout
    /// (Lambda waits for the full timeout). `None` keeps Lambda's behaviour.
    pub retry_after: Option<Duration>,
    /// Long-poll wait of each receive.
    pub poll_wait: Duration,
    /// Functions (logical ids) whose event sources are not polled (their messages wait in the queue).
    pub paused: Vec<String>,
    /// Locally, scheduled functions may run more often than their `rate(…)` (EventBridge's minimum is a
    /// minute). `None` keeps the template's period.
    pub schedule_every: Option<Duration>,
    /// Each function's AWS requests are checked against its role in template.yaml (`crate::iam`).
    pub enforce_iam: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            admin_token: None,
            retry_after: Some(Duration::from_secs(1)),
            poll_wait: Duration::from_secs(1),
            paused: Vec::new(),
            schedule_every: None,
            enforce_iam: true,
        }
    }
}

/// The handler a function binary runs.
#[derive(Clone)]
pub enum Handler {
    Api(AppContext),
    Ingest(AppContext),
    Encode(vod_worker::WorkerContext),
    Packager(vod_app::stream::StreamContext),
    Keys(vod_app::keys::KeysContext),
    Sweeper(AppContext),
}

/// One function of the stack, ready to invoke.
pub struct LocalFunction {
    pub spec: FunctionSpec,
    pub handler: Handler,
    pub invocations: AtomicU64,
    pub failed_messages: AtomicU64,
}

impl LocalFunction {
    fn new(sdk: &aws_config::SdkConfig, spec: &FunctionSpec, opts: &HostOptions, iam: &Iam) -> Result<Self> {
        let role_sdk;
        let sdk = if opts.enforce_iam {
            let inner = sdk
                .http_client()
                .unwrap_or_else(|| aws_smithy_http_client::Builder::new().build_http());
            role_sdk = sdk
                .to_builder()
                .http_client(RoleClient::new(
                    inner,
                    spec.role.clone(),
                    iam.arns.clone(),
                    iam.denials.clone(),
                ))
                .build();
            &role_sdk
        } else {
            sdk
        };
        let mut env = spec.environment.clone();
        if let Some(t) = &opts.admin_token {
            env.insert("ADMIN_TOKEN".into(), t.clone());
        }
        let fail = |e: vod_app::ConfigError| anyhow!("function {}: {e}", spec.logical_id);
        if spec.binary == "packager" {
            let config = vod_app::stream::StreamConfig::from_lookup(|k| env.get(k).cloned()).map_err(fail)?;
            return Ok(LocalFunction {
                spec: spec.clone(),
                handler: Handler::Packager(vod_app::stream::StreamContext::new(sdk, config)),
                invocations: AtomicU64::new(0),
                failed_messages: AtomicU64::new(0),
            });
        }
        if spec.binary == "keys" {
            let config = vod_app::keys::KeysConfig::from_lookup(|k| env.get(k).cloned()).map_err(fail)?;
            return Ok(LocalFunction {
                spec: spec.clone(),
                handler: Handler::Keys(vod_app::keys::KeysContext::new(sdk, &config)),
                invocations: AtomicU64::new(0),
                failed_messages: AtomicU64::new(0),
            });
        }
        let config = AppConfig::from_lookup(|k| env.get(k).cloned()).map_err(fail)?;
        let handler = match spec.binary.as_str() {
            "api" => Handler::Api(AppContext::new(sdk, config)),
            "ingest" => {
                let mut ctx = AppContext::new(sdk, config);
                ctx.assets = ctx.assets.clone().with_formats(vod_avprobe::FORMATS);
                Handler::Ingest(ctx)
            }
            "encode" => Handler::Encode(vod_worker::WorkerContext::new(sdk, &config, |k| env.get(k).cloned())),
            "sweeper" => Handler::Sweeper(AppContext::new(sdk, config)),
            other => {
                return Err(anyhow!(
                    "function {}: no local handler for binary {other}",
                    spec.logical_id
                ))
            }
        };
        Ok(LocalFunction {
            spec: spec.clone(),
            handler,
            invocations: AtomicU64::new(0),
            failed_messages: AtomicU64::new(0),
        })
    }

    /// Invokes an HTTP function with an API Gateway request.
    pub async fn invoke_http(&self, req: Request) -> Response<Body> {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        match &self.handler {
            Handler::Api(ctx) => vod_app::api::handle(ctx, req).await,
            Handler::Packager(ctx) => vod_app::stream::handle(ctx, req).await,
            Handler::Keys(ctx) => vod_app::keys::handle(ctx, req).await,
            _ => {
                let mut r = Response::new(Body::Text(r#"{"message":"Internal Server Error"}"#.into()));
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }

    /// Invokes an SQS function with a batch; `Err` is a failed invocation (the whole batch is retried).
    pub async fn invoke_sqs(&self, event: SqsEvent) -> Result<SqsBatchResponse> {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        match &self.handler {
            Handler::Ingest(ctx) => Ok(vod_app::ingest::handle_batch(ctx, event).await),
            Handler::Encode(ctx) => Ok(vod_worker::handle_batch(ctx, event).await),
            Handler::Sweeper(ctx) => Ok(vod_app::sweeper::handle_deferred(ctx, event).await),
            Handler::Api(_) | Handler::Packager(_) | Handler::Keys(_) => {
                Err(anyhow!("function {} does not take SQS events", self.spec.logical_id))
            }
        }
    }

    /// Invokes a scheduled function (an EventBridge scheduled event), abandoned at its timeout as Lambda would.
    pub async fn invoke_scheduled(self: &Arc<Self>) -> Result<serde_json::Value> {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let timeout = Duration::from_secs(self.spec.timeout_secs.max(1) as u64);
        let func = self.clone();
        let mut invocation = tokio::spawn(async move {
            match &func.handler {
                Handler::Sweeper(ctx) => vod_app::sweeper::sweep(ctx)
                    .await
                    .map_err(|e| anyhow!("{e}"))
                    .and_then(|r| Ok(serde_json::to_value(r)?)),
                _ => Err(anyhow!("function {} takes no scheduled events", func.spec.logical_id)),
            }
        });
        match tokio::time::timeout(timeout, &mut invocation).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow!("invocation crashed: {join}")),
            Err(_) => {
                invocation.abort();
                Err(anyhow!("invocation timed out after {} s", timeout.as_secs()))
            }
        }
    }
}

/// The running host: functions, pollers and the stop signal.
pub struct FunctionHost {
    pub functions: HashMap<String, Arc<LocalFunction>>,
    /// Requests the functions' roles refused.
    pub denials: Denials,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FunctionHost {
    /// Builds every function of the stack and starts a poller per SQS event source.
    pub fn start(sdk: &aws_config::SdkConfig, spec: &StackSpec, urls: &QueueUrls, opts: &HostOptions) -> Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let mut functions = HashMap::new();
        let mut tasks = Vec::new();
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let iam = Iam {
            arns: Arns {
                region: spec.region.clone(),
                account: crate::template::LOCAL_ACCOUNT.into(),
                kms_key: spec.kms_key_arn.clone().unwrap_or_default(),
                distributions: spec
                    .distributions
                    .iter()
                    .filter_map(|(t, e)| e.clone().map(|e| (t.clone(), e)))
                    .collect(),
            },
            denials: Denials::default(),
        };
        for f in &spec.functions {
            let func = Arc::new(LocalFunction::new(sdk, f, opts, &iam)?);
            let events = if opts.paused.contains(&f.logical_id) {
                &[][..]
            } else {
                &f.sqs_events[..]
            };
            for ev in events {
                let q = spec
                    .queue(&ev.queue)
                    .ok_or_else(|| anyhow!("queue {} not in stack", ev.queue))?;
                let url = urls
                    .get(&ev.queue)
                    .cloned()
                    .ok_or_else(|| anyhow!("queue {} not provisioned", ev.queue))?;
                let poller = Poller {
                    sqs: sqs.clone(),
                    url,
                    arn: spec.queue_arn(&q.name),
                    region: spec.region.clone(),
                    event: ev.clone(),
                    func: func.clone(),
                    opts: opts.clone(),
                };
                let rx = stop_rx.clone();
                let span = tracing::info_span!("poller", function = %f.logical_id, queue = %q.name);
                tasks.push(tokio::spawn(poller.run(rx).instrument(span)));
            }
            if let Some(period) = f.schedule.filter(|_| !opts.paused.contains(&f.logical_id)) {
                let every = opts.schedule_every.unwrap_or(period);
                let (func, mut rx) = (func.clone(), stop_rx.clone());
                let span = tracing::info_span!("schedule", function = %f.logical_id);
                tasks.push(tokio::spawn(
                    async move {
                        info!(every_secs = every.as_secs_f64(), "scheduled");
                        loop {
                            tokio::select! {
                                _ = rx.changed() => break,
                                _ = tokio::time::sleep(every) => {}
                            }
                            match func.invoke_scheduled().await {
                                Ok(result) => info!(%result, "scheduled invocation"),
                                Err(e) => error!(error = %e, "scheduled invocation failed"),
                            }
                        }
                    }
                    .instrument(span),
                ));
            }
            functions.insert(f.logical_id.clone(), func);
        }
        Ok(FunctionHost {
            functions,
            denials: iam.denials,
            stop,
            tasks,
        })
    }

    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops polling (an invocation in flight finishes first).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct Poller {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    region: String,
    event: SqsEventSpec,
    func: Arc<LocalFunction>,
    opts: HostOptions,
}

impl Poller {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        info!("polling");
        loop {
            if *stop.borrow() {
                break;
            }
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(self.event.batch_size.clamp(1, 10) as i32)
                .wait_time_seconds(self.opts.poll_wait.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send();
            let out = tokio::select! {
                _ = stop.changed() => break,
                out = receive => out,
            };
            let messages = match out {
                Ok(o) => o.messages.unwrap_or_default(),
                Err(e) => {
                    warn!(error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            self.deliver(messages).await;
        }
        info!("stopped");
    }

    /// Invokes the function with one batch and settles the messages as Lambda's event source would.
    async fn deliver(&self, messages: Vec<aws_sdk_sqs::types::Message>) {
        let event_json = sqs_event_json(&messages, &self.arn, &self.region);
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id().map(str::to_string))
            .collect();
        let event: SqsEvent = match serde_json::from_value(event_json) {
            Ok(e) => e,
            Err(e) => {
                error!(error = %e, "cannot build the SQS event");
                return;
            }
        };
        let timeout = Duration::from_secs(self.func.spec.timeout_secs.max(1) as u64);
        let func = self.func.clone();
        let mut invocation = tokio::spawn(async move { func.invoke_sqs(event).await });
        let failed: Vec<String> = match tokio::time::timeout(timeout, &mut invocation).await {
            Ok(Ok(Ok(resp))) if self.event.report_batch_item_failures => resp
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Ok(Ok(Ok(resp))) if resp.batch_item_failures.is_empty() => Vec::new(),
            Ok(Ok(Ok(_))) => ids.clone(),
            Ok(Ok(Err(e))) => {
                error!(error = %e, "invocation failed");
                ids.clone()
            }
            Ok(Err(join)) => {
                error!(error = %join, "invocation crashed");
                ids.clone()
            }
            Err(_) => {
                // Lambda ends the invocation at its timeout: the handler is abandoned mid-way, nothing it would
                // still do happens, and the batch's messages come back after their visibility timeout.
                invocation.abort();
                error!(timeout_secs = timeout.as_secs(), "invocation timed out");
                ids.clone()
            }
        };
        let mut done = Vec::new();
        for m in &messages {
            let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            if failed.iter().any(|f| f == id) {
                self.func.failed_messages.fetch_add(1, Ordering::Relaxed);
                if let Some(after) = self.opts.retry_after {
                    let _ = self
                        .sqs
                        .change_message_visibility()
                        .queue_url(&self.url)
                        .receipt_handle(handle)
                        .visibility_timeout(after.as_secs() as i32)
                        .send()
                        .await;
                }
            } else if let Ok(entry) = DeleteMessageBatchRequestEntry::builder()
                .id(done.len().to_string())
                .receipt_handle(handle)
                .build()
            {
                done.push(entry);
            }
        }
        if !done.is_empty() {
            if let Err(e) = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(done))
                .send()
                .await
            {
                warn!(error = %e, "deleting handled messages failed; they will be delivered again");
            }
        }
    }
}

/// The SQS event Lambda's event source would deliver for `messages` (the wire JSON).
pub fn sqs_event_json(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str, region: &str) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect())
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}
