//! Management API router (lambda_http): assets — create with upload URLs, list, get, delete, complete a
//! multipart upload —, presets, encoding jobs (create, list, get with tasks and progress, cancel) and the OpenAPI
//! document. Errors are JSON `{"error":{"code","message"}}` with a fitting status.
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::{error, warn};
use vod_domain::delivery::{CreateLocatorRequest, Filter, Locator, LocatorId, LocatorKind};
use vod_domain::job::{JobId, Preset};
use vod_domain::protection::{redact, ContentKeyView, DeliveryPolicy, KeyId, KeyPolicy};
use vod_domain::search::CaptionFormat;
use vod_domain::service::CreateAssetRequest;
use vod_domain::{AssetId, CompletedPart, DomainError};

use crate::AppContext;

/// The OpenAPI document of this API (kept in the repository beside this crate).
pub const OPENAPI: &str = include_str!("../openapi.json");
/// Largest JSON body the API accepts.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest JSON body of a caption upload (a caption file of up to 2 MiB, JSON-escaped).
pub const MAX_CAPTIONS_BODY: usize = 3 << 20;

/// An API error: status, stable code and a human-readable message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", m),
            e @ DomainError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            DomainError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            DomainError::Store(s) => {
                error!(error = %s, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable; retry later",
                )
            }
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}
#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    response(status, "application/json", Body::Text(body))
}

fn response(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        e.status,
        &ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: &e.message,
            },
        },
    )
}

fn parse_json<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, ApiError> {
    parse_json_within(req, MAX_BODY)
}

fn parse_json_within<T: for<'de> Deserialize<'de>>(req: &Request, max: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body is too large",
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn parse_id(raw: &str) -> Result<AssetId, ApiError> {
    AssetId::parse(raw).ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not an asset id")))
}

fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a job id")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJob {
    preset: String,
}

/// The management API's authentication, failing closed: a bearer token where `ADMIN_TOKEN` is configured (local),
/// an IAM caller in the request context where `API_AUTH=iam` (API Gateway's IAM authorizer, in AWS), otherwise no
/// request at all.
fn authorize(ctx: &AppContext, req: &Request) -> Result<(), ApiError> {
    let Some(expected) = &ctx.config.admin_token else {
        if ctx.config.api_auth_iam {
            let caller = match req.request_context_ref() {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.iam.as_ref())
                    .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone())),
                _ => None,
            };
            if caller.is_some() {
                return Ok(());
            }
            warn!("request without an IAM caller");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "requests must be signed with IAM credentials",
            ));
        }
        warn!("the management API has no authentication configured: request refused");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_not_configured",
            "the management API has no authentication configured (ADMIN_TOKEN or API_AUTH=iam)",
        ));
    };
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        warn!("request with a missing or wrong admin token");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteUpload {
    upload_id: String,
    parts: Vec<CompletedPart>,
}

/// Handles one API request. Never panics on input; every failure is a JSON error.
pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    match route(ctx, &req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn route(ctx: &AppContext, req: &Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    if segments == ["openapi.json"] {
        return match method {
            Method::GET | Method::HEAD => Ok(response(StatusCode::OK, "application/json", Body::Text(OPENAPI.into()))),
            _ => Err(method_not_allowed()),
        };
    }
    authorize(ctx, req)?;
    match (segments.as_slice(), method) {
        (["assets"], Method::POST) => {
            let body: CreateAssetRequest = parse_json(req)?;
            let created = ctx.assets.create_asset(body).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (["assets"], Method::GET) => {
            let q = req.query_string_parameters();
            let limit = limit_param(q.first("limit"), 50)?;
            let page = ctx
                .assets
                .list_assets(limit, q.first("next"))
                .await
                .map_err(|e| match e {
                    DomainError::Store(vod_domain::StoreError::Corrupt(m)) => ApiError::bad_request(m),
                    e => e.into(),
                })?;
            Ok(json_response(StatusCode::OK, &page))
        }
        (["assets", id], Method::GET) => {
            let asset = ctx.assets.get_asset(parse_id(id)?).await?;
            Ok(json_response(StatusCode::OK, &asset))
        }
        (["assets", id], Method::DELETE) => {
            let id = parse_id(id)?;
            ctx.assets.get_asset(id).await?;
            ctx.jobs.store().delete_jobs_of(id).await.map_err(DomainError::from)?;
            ctx.delivery.delete_for_asset(id).await?;
            for k in ctx
                .protection
                .store()
                .list_content_keys(id)
                .await
                .map_err(DomainError::from)?
            {
                ctx.protection
                    .store()
                    .delete_content_key(k.kid)
                    .await
                    .map_err(DomainError::from)?;
            }
            ctx.assets.delete_asset(id).await?;
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["assets", id, "upload", "parts"], Method::GET) => {
            // A page of part URLs of a multipart upload and the parts already stored (to resume it).
            let q = req.query_string_parameters();
            let num = |k: &str, default: Option<u64>| -> Result<u64, ApiError> {
                match (q.first(k), default) {
                    (Some(v), _) => v
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("{k} must be a non-negative integer"))),
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(ApiError::bad_request(format!("{k} is required"))),
                }
            };
            let upload_id = q
                .first("upload_id")
                .ok_or_else(|| ApiError::bad_request("upload_id is required"))?
                .to_string();
            let page = ctx
                .assets
                .upload_parts(
                    parse_id(id)?,
                    &upload_id,
                    num("size", None)?,
                    num("from", Some(1))?,
                    num("count", Some(vod_domain::service::PART_URLS_PAGE))?,
                )
                .await?;
            Ok(json_response(StatusCode::OK, &page))
        }
        (["assets", id, "upload", "complete"], Method::POST) => {
            let id = parse_id(id)?;
            let body: CompleteUpload = parse_json(req)?;
            let asset = ctx.assets.complete_upload(id, &body.upload_id, &body.parts).await?;
            Ok(json_response(StatusCode::OK, &asset))
        }
        (["assets", id, "jobs"], Method::POST) => {
            let id = parse_id(id)?;
            let body: CreateJob = parse_json(req)?;
            let view = ctx.jobs.create_job(id, &body.preset).await?;
            Ok(json_response(StatusCode::CREATED, &view))
        }
        (["assets", id, "jobs"], Method::GET) => {
            let id = parse_id(id)?;
            ctx.assets.get_asset(id).await?;
            let jobs = ctx.jobs.list_jobs(id).await?;
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": jobs })))
        }
        (["jobs", id], Method::GET) => {
            // The job with a page of its tasks: `tasks_limit` (1..=1000, default 100) after `tasks_after`.
            let q = req.query_string_parameters();
            let limit = limit_param(q.first("tasks_limit"), vod_domain::jobs::TASK_PAGE as usize)?;
            let after = match q.first("tasks_after") {
                None => None,
                Some(a) => Some(
                    a.parse::<u32>()
                        .map_err(|_| ApiError::bad_request("tasks_after must be a task index"))?,
                ),
            };
            let view = ctx.jobs.get_job_page(parse_job_id(id)?, after, limit as u32).await?;
            Ok(json_response(StatusCode::OK, &view))
        }
        (["jobs", id, "cancel"], Method::POST) => {
            let view = ctx.jobs.cancel_job(parse_job_id(id)?).await?;
            Ok(json_response(StatusCode::OK, &view))
        }
        (["assets", id, "captions"], Method::POST) => {
            // A sidecar caption file: stored normalised, streamed with the asset's other captions, searchable.
            let id = parse_id(id)?;
            let body: vod_domain::sidecar::AddCaptions = parse_json_within(req, MAX_CAPTIONS_BODY)?;
            let track = ctx.captions.add(id, &body).await?;
            // Manifests the CDN cached without the track are dropped.
            ctx.delivery.invalidate_asset(id).await?;
            Ok(json_response(StatusCode::CREATED, &track))
        }
        (["assets", id, "captions"], Method::GET) => {
            let list = ctx.captions.list(parse_id(id)?).await?;
            Ok(json_response(StatusCode::OK, &list))
        }
        (["assets", id, "captions", track], Method::GET | Method::HEAD) => {
            let (t, cues) = ctx.captions.track(parse_id(id)?, track).await?;
            let (body, format) = match req.query_string_parameters().first("format") {
                None | Some("vtt") => (vod_domain::indexing::webvtt(&cues), CaptionFormat::WebVtt),
                Some("ttml") => (vod_domain::indexing::ttml(&cues, &t.language), CaptionFormat::Ttml),
                Some(f) => return Err(ApiError::bad_request(format!("format {f:?} is not vtt or ttml"))),
            };
            Ok(response(StatusCode::OK, format.content_type(), Body::Text(body)))
        }
        (["assets", id, "captions", track], Method::DELETE) => {
            // Idempotent: a track already gone is not an error.
            let id = parse_id(id)?;
            if ctx.captions.delete(id, track).await? {
                ctx.delivery.invalidate_asset(id).await?;
            }
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["assets", id, file], Method::GET | Method::HEAD) if file.starts_with("captions.") => {
            let format = match *file {
                "captions.vtt" => CaptionFormat::WebVtt,
                "captions.ttml" => CaptionFormat::Ttml,
                _ => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "captions are served as captions.vtt or captions.ttml",
                    ))
                }
            };
            let body = ctx.search.captions(parse_id(id)?, format).await?;
            let text = String::from_utf8(body).map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "stored captions are not UTF-8",
                )
            })?;
            Ok(response(StatusCode::OK, format.content_type(), Body::Text(text)))
        }
        (["assets", id, "transcript"], Method::GET) => {
            let doc = ctx.search.transcript_document(parse_id(id)?).await?;
            Ok(json_response(StatusCode::OK, &doc))
        }
        (["assets", id, "search"], Method::GET) => {
            let id = parse_id(id)?;
            let q = req.query_string_parameters();
            let query = q
                .first("q")
                .ok_or_else(|| ApiError::bad_request("missing query parameter q"))?;
            let found = ctx
                .search
                .search_asset(id, query, limit_param(q.first("limit"), 100)?)
                .await?;
            Ok(json_response(StatusCode::OK, &found))
        }
        (["search"], Method::GET) => {
            let q = req.query_string_parameters();
            let query = q
                .first("q")
                .ok_or_else(|| ApiError::bad_request("missing query parameter q"))?;
            let limit = limit_param(q.first("limit"), 20)?;
            let items = ctx.search.search_all(query, limit, 20).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "query": query, "items": items }),
            ))
        }
        (["presets"], Method::GET) => {
            let presets = ctx.jobs.list_presets().await?;
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": presets })))
        }
        (["presets"], Method::POST) => {
            let preset: Preset = parse_json(req)?;
            let stored = ctx.jobs.put_preset(preset).await?;
            Ok(json_response(StatusCode::CREATED, &stored))
        }
        (["presets", name], Method::GET) => {
            let preset = ctx.jobs.get_preset(name).await?;
            Ok(json_response(StatusCode::OK, &preset))
        }
        (["locators"], Method::POST) => {
            let body: CreateLocatorRequest = parse_json(req)?;
            let locator = ctx.delivery.create_locator(body).await?;
            let asset = ctx.assets.get_asset(locator.asset_id).await?;
            Ok(json_response(StatusCode::CREATED, &locator_view(ctx, locator, &asset)))
        }
        (["locators", id], Method::GET) => {
            let locator = ctx.delivery.get_locator(parse_locator_id(id)?).await?;
            let asset = ctx.assets.get_asset(locator.asset_id).await?;
            Ok(json_response(StatusCode::OK, &locator_view(ctx, locator, &asset)))
        }
        (["locators", id], Method::DELETE) => {
            ctx.delivery.delete_locator(parse_locator_id(id)?).await?;
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["assets", id, "locators"], Method::GET) => {
            let id = parse_id(id)?;
            // One read of the asset for all its locators' URLs.
            let asset = ctx.assets.get_asset(id).await?;
            let items: Vec<LocatorView> = ctx
                .delivery
                .list_locators(id)
                .await?
                .into_iter()
                .map(|l| locator_view(ctx, l, &asset))
                .collect();
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        (["assets", id, "filters"], Method::POST) => {
            let id = parse_id(id)?;
            let mut filter: Filter = parse_json(req)?;
            if filter.asset_id.is_some_and(|a| a != id) {
                return Err(ApiError::bad_request("asset_id does not match the path"));
            }
            filter.asset_id = Some(id);
            Ok(json_response(
                StatusCode::CREATED,
                &ctx.delivery.put_filter(filter).await?,
            ))
        }
        (["assets", id, "filters"], Method::GET) => {
            let id = parse_id(id)?;
            ctx.assets.get_asset(id).await?;
            let items = ctx.delivery.list_filters(Some(id)).await?;
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        (["assets", id, "filters", name], Method::GET) => {
            let f = ctx.delivery.get_filter(Some(parse_id(id)?), name).await?;
            Ok(json_response(StatusCode::OK, &f))
        }
        (["assets", id, "filters", name], Method::DELETE) => {
            ctx.delivery.delete_filter(Some(parse_id(id)?), name).await?;
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["filters"], Method::POST) => {
            let filter: Filter = parse_json(req)?;
            if filter.asset_id.is_some() {
                return Err(ApiError::bad_request(
                    "global filters have no asset_id; use /assets/{id}/filters",
                ));
            }
            Ok(json_response(
                StatusCode::CREATED,
                &ctx.delivery.put_filter(filter).await?,
            ))
        }
        (["filters"], Method::GET) => {
            let items = ctx.delivery.list_filters(None).await?;
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        (["filters", name], Method::GET) => Ok(json_response(
            StatusCode::OK,
            &ctx.delivery.get_filter(None, name).await?,
        )),
        (["filters", name], Method::DELETE) => {
            ctx.delivery.delete_filter(None, name).await?;
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["key-policies"], Method::POST) => {
            let policy: KeyPolicy = parse_json(req)?;
            Ok(json_response(
                StatusCode::CREATED,
                &ctx.protection.put_key_policy(policy).await?,
            ))
        }
        (["key-policies"], Method::GET) => {
            let items: Vec<KeyPolicy> = ctx
                .protection
                .store()
                .list_key_policies()
                .await
                .map_err(DomainError::from)?
                .into_iter()
                .map(redact)
                .collect();
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "items": items })))
        }
        (["key-policies", name], Method::GET) => Ok(json_response(
            StatusCode::OK,
            &redact(ctx.protection.get_key_policy(name).await?),
        )),
        (["key-policies", name], Method::DELETE) => {
            ctx.protection.get_key_policy(name).await?;
            ctx.protection
                .store()
                .delete_key_policy(name)
                .await
                .map_err(DomainError::from)?;
            Ok(response(StatusCode::NO_CONTENT, "application/json", Body::Empty))
        }
        (["assets", id, "delivery-policies"], Method::PUT) => {
            let id = parse_id(id)?;
            let body: SetDeliveryPolicies = parse_json(req)?;
            let keys = ctx.protection.set_delivery_policies(id, body.policies.clone()).await?;
            // What the CDN cached under the old policies (clear segments, another scheme) is dropped.
            let invalidated = ctx.delivery.invalidate_asset(id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "policies": body.policies, "content_keys": keys, "invalidated": invalidated }),
            ))
        }
        (["assets", id, "delivery-policies"], Method::GET) => {
            let asset = ctx.assets.get_asset(parse_id(id)?).await?;
            let keys = content_keys(ctx, asset.id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "policies": asset.delivery_policies, "content_keys": keys }),
            ))
        }
        (["assets", id, "content-keys"], Method::GET) => {
            let id = parse_id(id)?;
            ctx.assets.get_asset(id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "items": content_keys(ctx, id).await? }),
            ))
        }
        (["content-keys"], Method::POST) => {
            let body: CreateContentKey = parse_json(req)?;
            ctx.assets.get_asset(body.asset).await?;
            let key = ctx.protection.create_content_key(body.asset, &body.key_policy).await?;
            Ok(json_response(StatusCode::CREATED, &ContentKeyView::from(&key)))
        }
        (["content-keys", kid, "retire"], Method::POST) => {
            let kid = KeyId::parse(kid).ok_or_else(|| ApiError::bad_request("not a key id"))?;
            let (retired, replacement) = ctx.protection.retire_content_key(kid).await?;
            // Segments the CDN cached under the retired key are dropped.
            let invalidated = ctx.delivery.invalidate_asset(retired.asset_id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "retired": ContentKeyView::from(&retired),
                    "replacement": replacement.as_ref().map(ContentKeyView::from),
                    "invalidated": invalidated,
                }),
            ))
        }
        (["assets"], _)
        | (["assets", _], _)
        | (["key-policies"], _)
        | (["key-policies", _], _)
        | (["assets", _, "delivery-policies"], _)
        | (["assets", _, "content-keys"], _)
        | (["content-keys"], _)
        | (["content-keys", _, "retire"], _)
        | (["locators"], _)
        | (["locators", _], _)
        | (["assets", _, "locators"], _)
        | (["assets", _, "filters"], _)
        | (["assets", _, "filters", _], _)
        | (["filters"], _)
        | (["filters", _], _)
        | (["assets", _, "upload", "complete"], _)
        | (["assets", _, "upload", "parts"], _)
        | (["assets", _, "jobs"], _)
        | (["jobs", _], _)
        | (["jobs", _, "cancel"], _)
        | (["presets"], _)
        | (["presets", _], _)
        | (["assets", _, "transcript"], _)
        | (["assets", _, "captions"], _)
        | (["assets", _, "captions", _], _)
        | (["assets", _, "search"], _)
        | (["search"], _) => Err(method_not_allowed()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDeliveryPolicies {
    policies: Vec<DeliveryPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateContentKey {
    asset: AssetId,
    key_policy: String,
}

async fn content_keys(ctx: &AppContext, asset: AssetId) -> Result<Vec<ContentKeyView>, ApiError> {
    Ok(ctx
        .protection
        .store()
        .list_content_keys(asset)
        .await
        .map_err(DomainError::from)?
        .iter()
        .map(ContentKeyView::from)
        .collect())
}

fn parse_locator_id(raw: &str) -> Result<LocatorId, ApiError> {
    LocatorId::parse(raw).ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a locator id")))
}

/// A locator with the URLs it grants.
#[derive(Serialize)]
struct LocatorView {
    #[serde(flatten)]
    locator: Locator,
    /// Streaming locators: HLS and DASH manifests (friendly and AMS-style), and the player page.
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<serde_json::Value>,
    /// Download locators: the progressive MP4 of each rendition, through the packager (Range).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    downloads: Vec<serde_json::Value>,
}

/// The URLs a locator grants on `asset` (its asset).
fn locator_view(ctx: &AppContext, locator: Locator, asset: &vod_domain::Asset) -> LocatorView {
    let base = ctx.config.stream_base_url.as_deref().unwrap_or("/stream");
    let root = format!("{base}/{}", locator.id);
    let ism = format!("{root}/{}.ism", locator.name);
    let mut view = LocatorView {
        urls: None,
        downloads: Vec::new(),
        locator,
    };
    match view.locator.kind {
        LocatorKind::Streaming => {
            let hls = format!("{root}/main.m3u8");
            let dash = format!("{root}/main.mpd");
            let mut urls = serde_json::json!({
                "hls": hls,
                "dash": dash,
                "hls_cmaf": format!("{ism}/manifest(format=m3u8-cmaf)"),
                "dash_cmaf": format!("{ism}/manifest(format=mpd-time-cmaf)"),
                // Key delivery shares the CDN: W3C Clear Key licences (protected assets).
                "clearkey_license": format!("{}/keys/clearkey", base.strip_suffix("/stream").unwrap_or("")),
            });
            // Thumbnails: the WebVTT index of the sprite sheets (seek-bar previews) and the poster.
            let enc =
                |u: &str| percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string();
            let mut previews = String::new();
            if asset.output.as_ref().is_some_and(|o| o.thumbnails.is_some()) {
                let vtt = format!("{ism}/thumbnails/thumbnails.vtt");
                previews = format!("&thumbnails={}", enc(&vtt));
                urls["thumbnails"] = serde_json::json!(vtt);
                urls["poster"] = serde_json::json!(format!("{ism}/thumbnails/poster.jpg"));
            }
            if let Some(player) = &ctx.config.player_url {
                // The page sends a viewer's token to the key server's origin only.
                let keys = format!("&keys={}", enc(base.strip_suffix("/stream").unwrap_or(base)));
                urls["player"] = serde_json::json!({
                    "hls.js": format!("{player}?player=hls&src={}{keys}{previews}", enc(&hls)),
                    "dash.js": format!("{player}?player=dash&src={}{keys}{previews}", enc(&dash)),
                    "shaka": format!("{player}?player=shaka&src={}{keys}{previews}", enc(&dash)),
                });
            }
            view.urls = Some(urls);
        }
        LocatorKind::Download => {
            // The progressive files are assembled on request from the segments: there is no object to presign.
            for r in asset.output.iter().flat_map(|o| o.renditions.iter()) {
                view.downloads
                    .push(serde_json::json!({"rendition": r.name, "url": format!("{ism}/{}.mp4", r.name)}));
            }
        }
    }
    view
}

/// A `limit` query parameter: 1..=1000, `default` when absent.
fn limit_param(raw: Option<&str>, default: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000")),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(extra: &[(&str, &str)]) -> AppContext {
        let mut env: std::collections::HashMap<String, String> = [
            ("TABLE_NAME", "t"),
            ("UPLOAD_BUCKET", "u"),
            ("MEDIA_BUCKET", "m"),
            ("ENCODE_QUEUE_URL", "http://q/q"),
            ("KMS_KEY_ID", "alias/k"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.retain(|_, v| !v.is_empty());
        let config = crate::config::AppConfig::from_lookup(|k| env.get(k).cloned()).expect("config");
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        AppContext::new(&sdk, config)
    }

    async fn status(ctx: &AppContext, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = http::Request::builder().method("GET").uri("https://api.example/assets");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = handle(ctx, req.body(Body::Empty).expect("request")).await;
        let body = match r.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (r.status(), body)
    }

    /// Issue 15 item 9: before, an API with neither an admin token nor IAM configured answered every request.
    #[tokio::test]
    async fn the_api_fails_closed_without_authentication() {
        let open = context(&[]);
        let (s, body) = status(&open, None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("auth_not_configured"), "{body}");
        // IAM mode: a request that API Gateway did not authorize (no IAM caller in its context) is refused.
        let iam = context(&[("API_AUTH", "iam")]);
        let (s, body) = status(&iam, Some("Bearer anything")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
        let token = context(&[("ADMIN_TOKEN", "secret-token")]);
        assert_eq!(status(&token, Some("Bearer wrong")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&token, None).await.0, StatusCode::UNAUTHORIZED);
        // The OpenAPI document stays public.
        let req = http::Request::builder()
            .uri("https://api.example/openapi.json")
            .body(Body::Empty)
            .expect("request");
        assert_eq!(handle(&open, req).await.status(), StatusCode::OK);
    }
}
