//! Key delivery (lambda_http, its own route on the stream API and the CDN, never cached): `GET /keys/{kid}` answers
//! the raw 16-byte AES-128 key for HLS, `POST /keys/clearkey` a W3C Clear Key licence for the requested key ids.
//! A key leaves only as its asset's DeliveryPolicies use it (the raw key for HLS AES-128, a licence where Clear Key
//! is listed; Widevine/PlayReady/FairPlay-only assets get neither), never once retired, and only as its KeyPolicy
//! allows: the token comes from `Authorization: Bearer` or `?token=`; 401 for a missing or invalid token, 403 for a
//! valid one the policies do not allow. Keys and tokens are never
//! logged.
use base64::Engine as _;
use http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use tracing::{info, warn};
use vod_domain::protection::{AuthorizeError, KeyId, KeyRelease, ProtectionService, TokenError};

use crate::api::{error_response, ApiError};
use crate::config::ConfigError;

/// Largest licence request body.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub table_name: String,
    pub kms_key_id: String,
}

impl KeysConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(k));
        Ok(KeysConfig {
            table_name: req("TABLE_NAME")?,
            kms_key_id: req("KMS_KEY_ID")?,
        })
    }
}

#[derive(Clone)]
pub struct KeysContext {
    pub protection: ProtectionService,
}

impl KeysContext {
    pub fn new(sdk: &aws_config::SdkConfig, config: &KeysConfig) -> Self {
        let a = vod_runtime::Adapters::new(sdk, &config.table_name, &config.kms_key_id);
        KeysContext {
            protection: ProtectionService::new(a.assets, a.keys, a.kms),
        }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = KeysConfig::from_lookup(|k| std::env::var(k).ok())?;
        let sdk = vod_aws::load_sdk_config().await;
        Ok(Self::new(&sdk, &config))
    }
}

fn err(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, code, msg)
}

fn cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

/// The bearer token of a request: `Authorization: Bearer …` or the `token` query parameter.
fn token_of(req: &Request) -> Option<String> {
    if let Some(t) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    {
        return Some(t.trim().to_string());
    }
    req.query_string_parameters().first("token").map(str::to_string)
}

fn b64url() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

#[derive(Deserialize)]
struct LicenceRequest {
    kids: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Handles one key request. Never panics on input; every failure is a JSON error.
pub async fn handle(ctx: &KeysContext, req: Request) -> Response<Body> {
    if req.method() == Method::OPTIONS {
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("86400"));
        return cors(r);
    }
    match route(ctx, &req).await {
        Ok(r) => cors(r),
        Err(e) => cors(error_response(&e)),
    }
}

async fn release(
    ctx: &KeysContext,
    kid: KeyId,
    token: Option<&str>,
    how: KeyRelease,
) -> Result<zeroize::Zeroizing<[u8; 16]>, ApiError> {
    let key = ctx
        .protection
        .store()
        .get_content_key(kid)
        .await
        .map_err(|e| {
            warn!(error = %e, "key store failure");
            err(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "key store unavailable")
        })?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "not_found", format!("no content key {kid}")))?;
    match ctx.protection.authorize(&key, token, how).await {
        Ok(()) => {}
        Err(AuthorizeError::Token(TokenError::Unauthorized(m))) => {
            info!(%kid, reason = %m, "key request refused (401)");
            return Err(err(StatusCode::UNAUTHORIZED, "unauthorized", m));
        }
        Err(AuthorizeError::Token(TokenError::Forbidden(m))) => {
            info!(%kid, reason = %m, "key request refused (403)");
            return Err(err(StatusCode::FORBIDDEN, "forbidden", m));
        }
        Err(AuthorizeError::Domain(e)) => {
            warn!(%kid, error = %e, "key policy unavailable");
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "key policy unavailable",
            ));
        }
    }
    let plain = ctx.protection.unwrap_content_key(&key).await.map_err(|e| {
        warn!(%kid, error = %e, "key unwrap failed");
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "key service unavailable",
        )
    })?;
    info!(%kid, asset_id = %key.asset_id, "key released");
    Ok(plain)
}

async fn route(ctx: &KeysContext, req: &Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/keys/")
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "not_found", format!("no route for {path}")))?;
    let token = token_of(req);
    match (rest, req.method().clone()) {
        ("clearkey", Method::POST) => {
            let body: &[u8] = req.body().as_ref();
            if body.len() > MAX_BODY {
                return Err(err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "licence request too large",
                ));
            }
            let lr: LicenceRequest = serde_json::from_slice(body).map_err(|e| {
                err(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("invalid licence request: {e}"),
                )
            })?;
            if lr.kids.is_empty() || lr.kids.len() > 16 {
                return Err(err(StatusCode::BAD_REQUEST, "bad_request", "ask for 1 to 16 key ids"));
            }
            let mut keys = Vec::new();
            for k in &lr.kids {
                let raw = b64url()
                    .decode(k.trim_end_matches('='))
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| {
                        err(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            "a key id is not 16 bytes base64url",
                        )
                    })?;
                let kid = KeyId::from_bytes(raw);
                let plain = release(ctx, kid, token.as_deref(), KeyRelease::ClearKeyLicence).await?;
                keys.push(serde_json::json!({"kty": "oct", "kid": b64url().encode(raw), "k": b64url().encode(*plain)}));
            }
            let licence = serde_json::json!({"keys": keys, "type": lr.kind.as_deref().unwrap_or("temporary")});
            let mut r = Response::new(Body::Text(licence.to_string()));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        (kid, Method::GET) => {
            let kid = KeyId::parse(kid).ok_or_else(|| err(StatusCode::NOT_FOUND, "not_found", "not a key id"))?;
            let plain = release(ctx, kid, token.as_deref(), KeyRelease::RawKey).await?;
            let mut r = Response::new(Body::Binary(plain.to_vec()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(r)
        }
        _ => Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "GET /keys/{kid} or POST /keys/clearkey",
        )),
    }
}
