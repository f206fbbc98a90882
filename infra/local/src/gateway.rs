//! Local HTTP gateway: serves the template's HttpApi routes on 127.0.0.1, turning each request into an API Gateway
//! HTTP API (payload 2.0) event that lambda_http decodes exactly as in Lambda, and the handler's response back.
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::host::LocalFunction;
use crate::template::{HttpRoute, Throttle};

/// API Gateway's request payload limit.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// A route of the API and the function behind it.
#[derive(Clone)]
pub struct Route {
    pub route: HttpRoute,
    pub function: Arc<LocalFunction>,
    /// The route's token bucket, when its API throttles.
    pub bucket: Option<Arc<TokenBucket>>,
}

impl Route {
    pub fn new(route: HttpRoute, function: Arc<LocalFunction>) -> Self {
        let bucket = route.throttle.map(|t| Arc::new(TokenBucket::new(t)));
        Route {
            route,
            function,
            bucket,
        }
    }
}

/// API Gateway's throttling of a route: `burst` tokens, refilled at `rate` per second; a request without a token
/// is answered 429 before any function runs.
pub struct TokenBucket {
    throttle: Throttle,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(throttle: Throttle) -> Self {
        TokenBucket {
            throttle,
            state: Mutex::new((throttle.burst as f64, Instant::now())),
        }
    }

    /// Takes a token if one is left.
    pub fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refilled = s.0 + now.duration_since(s.1).as_secs_f64() * self.throttle.rate;
        let tokens = refilled.min(self.throttle.burst as f64);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            true
        } else {
            *s = (tokens, now);
            false
        }
    }
}

/// Matches a path against a route template (`/assets/{id}`, `/{proxy+}`); returns the path parameters.
pub fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = BTreeMap::new();
    for (i, seg) in t.iter().enumerate() {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            if i >= p.len() {
                return None;
            }
            params.insert(name.to_string(), p[i..].join("/"));
            return Some(params);
        }
        let actual = p.get(i)?;
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                params.insert(name.to_string(), (*actual).to_string());
            }
            None if seg == actual => {}
            None => return None,
        }
    }
    (t.len() == p.len()).then_some(params)
}

fn plain(status: u16, body: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves the routes until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    routes: Vec<Route>,
    static_dir: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    let routes = Arc::new(routes);
    let static_dir = Arc::new(static_dir);
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let routes = routes.clone();
        let static_dir = static_dir.clone();
        let local = listener.local_addr().ok();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let routes = routes.clone();
                let static_dir = static_dir.clone();
                async move {
                    if let (Some(dir), Some(file)) = (static_dir.as_ref(), req.uri().path().strip_prefix("/player/")) {
                        return Ok::<_, Infallible>(serve_static(dir, file).await);
                    }
                    Ok::<_, Infallible>(dispatch(&routes, req, peer, local).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Serves a file of the player page (local development only; in AWS the page is hosted wherever its owner likes).
async fn serve_static(dir: &Path, file: &str) -> hyper::Response<Full<Bytes>> {
    let file = if file.is_empty() { "index.html" } else { file };
    let ok = file
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !file.starts_with('.');
    if !ok {
        return plain(404, r#"{"message":"Not Found"}"#);
    }
    let Ok(body) = tokio::fs::read(dir.join(file)).await else {
        return plain(404, r#"{"message":"Not Found"}"#);
    };
    let ct = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript",
        Some("css") => "text/css",
        Some("json") | Some("map") => "application/json",
        _ => "application/octet-stream",
    };
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    if let Ok(v) = hyper::header::HeaderValue::from_str(ct) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn dispatch(
    routes: &[Route],
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let mut matched = None;
    for r in routes {
        if r.route.method != method && r.route.method != "ANY" {
            continue;
        }
        if let Some(params) = match_path(&r.route.path, &path) {
            matched = Some((r, params));
            break;
        }
    }
    let Some((route, params)) = matched else {
        return plain(404, r#"{"message":"Not Found"}"#);
    };
    if route.bucket.as_ref().is_some_and(|b| !b.take()) {
        return plain(429, r#"{"message":"Too Many Requests"}"#);
    }
    match to_event(req, &route.route, params, peer, local).await {
        Ok(event) => match lambda_http::request::from_str(&event.to_string()) {
            Ok(lreq) => from_lambda(route.function.invoke_http(lreq).await),
            Err(e) => {
                warn!(error = %e, "cannot decode API Gateway event");
                plain(500, r#"{"message":"Internal Server Error"}"#)
            }
        },
        Err(status) => plain(status, r#"{"message":"Request Entity Too Large"}"#),
    }
}

async fn to_event(
    req: hyper::Request<Incoming>,
    route: &HttpRoute,
    params: BTreeMap<String, String>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> std::result::Result<serde_json::Value, u16> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_PAYLOAD)
        .collect()
        .await
        .map_err(|_| 413u16)?
        .to_bytes();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).to_string();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), json!(v));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url_pairs(&raw_query) {
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let now = chrono::Utc::now();
    let route_key = format!("{} {}", route.method, route.path);
    let request_id = format!("local-{:x}", now.timestamp_nanos_opt().unwrap_or_default());
    use base64_engine::encode;
    Ok(json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { json!(query) },
        "pathParameters": if params.is_empty() { serde_json::Value::Null } else { json!(params) },
        "requestContext": {
            "accountId": crate::template::LOCAL_ACCOUNT,
            "apiId": "local",
            "domainName": local.map(|a| a.to_string()).unwrap_or_else(|| "localhost".into()),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": if body.is_empty() { serde_json::Value::Null } else { json!(encode(&body)) },
        "isBase64Encoded": !body.is_empty(),
    }))
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                let s = s.replace('+', " ");
                percent_encoding::percent_decode_str(&s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

mod base64_engine {
    use base64::Engine;
    pub fn encode(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }
}

fn from_lambda(resp: lambda_http::Response<lambda_http::Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut r = hyper::Response::new(Full::new(bytes));
    *r.status_mut() = parts.status;
    *r.headers_mut() = parts.headers;
    r
}

/// Binds the gateway; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    Ok(TcpListener::bind(addr).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_bucket_allows_its_burst_then_its_rate() {
        let b = TokenBucket::new(Throttle { rate: 20.0, burst: 3 });
        assert_eq!(
            (0..5).map(|_| b.take()).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(b.take() && b.take(), "two tokens back after 0.12 s at 20/s");
        assert!((0..10).filter(|_| b.take()).count() <= 1, "never more than the burst");
    }

    #[test]
    fn matches_route_templates() {
        assert_eq!(match_path("/assets", "/assets").unwrap().len(), 0);
        assert_eq!(match_path("/assets/{id}", "/assets/abc").unwrap()["id"], "abc");
        assert!(match_path("/assets/{id}", "/assets").is_none());
        assert!(match_path("/assets/{id}", "/assets/a/b").is_none());
        assert_eq!(match_path("/{proxy+}", "/a/b/c").unwrap()["proxy"], "a/b/c");
        assert_eq!(
            url_pairs("a=1&b=x%20y+z"),
            vec![("a".into(), "1".into()), ("b".into(), "x y z".into())]
        );
    }
}
