//! Each local function runs with its role from template.yaml: the emulator does not evaluate IAM, so every AWS
//! request a function's SDK clients send passes through `RoleClient`, which names the request's IAM action and
//! resource (as AWS would authorize it) and answers `AccessDenied` unless a statement of the function's policies
//! allows it. Hand-written: no crate maps SDK requests to IAM actions or evaluates IAM policies offline.
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use tracing::warn;

/// One `Allow` or `Deny` statement of a role, intrinsics resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// `ForAnyValue:StringLike` on `dynamodb:LeadingKeys`: the statement applies only when one of the request's
    /// partition keys matches one of these (the one condition this project's policies use).
    pub leading_keys: Option<Vec<String>>,
}

/// A function's permissions: its policies' statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    pub function: String,
    pub statements: Vec<Statement>,
}

/// What a request asks IAM for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub action: String,
    pub resource: String,
    /// The partition keys a DynamoDB request touches (`dynamodb:LeadingKeys`).
    pub leading_keys: Vec<String>,
}

/// Where the local stack's resource ARNs live.
#[derive(Debug, Clone)]
pub struct Arns {
    pub region: String,
    pub account: String,
    /// The ARN standing for the stack's KMS key (the emulator's key ids are not known to the template).
    pub kms_key: String,
    /// CloudFront distributions: (the id the template gives, the emulator's id).
    pub distributions: Vec<(String, String)>,
}

/// `*` and `?` as IAM matches them.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Role {
    /// Reads a function's `Policies` (already evaluated): inline `Statement` documents only; anything else is refused
    /// so that no permission is assumed.
    pub fn from_policies(function: &str, policies: &Value) -> Result<Self> {
        let mut statements = Vec::new();
        let list = match policies {
            Value::Null => {
                return Ok(Role {
                    function: function.into(),
                    statements,
                })
            }
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let strings = |v: Option<&Value>| -> Result<Vec<String>> {
            match v {
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| anyhow!("not a string: {x}"))
                    })
                    .collect(),
                other => bail!("expected a string or a list, found {other:?}"),
            }
        };
        for p in list {
            let Some(doc) = p.get("Statement") else {
                bail!("{function}: only inline Statement policies are understood locally, found {p}");
            };
            let doc = match doc {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for s in doc {
                if s.get("NotAction").is_some() || s.get("NotResource").is_some() {
                    bail!("{function}: NotAction and NotResource are not evaluated locally: {s}");
                }
                let leading_keys = match s.get("Condition") {
                    None => None,
                    Some(c) => {
                        let keys = c.pointer("/ForAnyValue:StringLike/dynamodb:LeadingKeys");
                        if c.as_object().map(|o| o.len()) != Some(1) || keys.is_none() {
                            bail!("{function}: only ForAnyValue:StringLike on dynamodb:LeadingKeys is evaluated locally: {s}");
                        }
                        Some(strings(keys)?)
                    }
                };
                statements.push(Statement {
                    allow: s.get("Effect").and_then(Value::as_str) == Some("Allow"),
                    actions: strings(s.get("Action"))?
                        .into_iter()
                        .map(|a| a.to_lowercase())
                        .collect(),
                    resources: strings(s.get("Resource"))?,
                    leading_keys,
                });
            }
        }
        Ok(Role {
            function: function.into(),
            statements,
        })
    }

    /// IAM's decision: an explicit deny wins, then any allow; nothing allows by default.
    pub fn allows(&self, access: &Access) -> bool {
        let action = access.action.to_lowercase();
        let matches = |s: &&Statement| {
            s.actions.iter().any(|a| glob(a, &action))
                && s.resources.iter().any(|r| glob(r, &access.resource))
                && s.leading_keys
                    .as_ref()
                    .is_none_or(|patterns| access.leading_keys.iter().any(|k| patterns.iter().any(|p| glob(p, k))))
        };
        !self.statements.iter().filter(|s| !s.allow).any(|s| matches(&s))
            && self.statements.iter().filter(|s| s.allow).any(|s| matches(&s))
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)
}

/// The SigV4 signing service of a request (`Credential=…/region/service/aws4_request`).
fn signing_service(req: &HttpRequest) -> Option<String> {
    let auth = header(req, "authorization")?;
    let cred = auth.split("Credential=").nth(1)?.split(',').next()?;
    cred.split('/').nth(3).map(str::to_string)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The accesses one SDK request needs (a batch or transaction needs one per table).
pub fn accesses(req: &HttpRequest, arns: &Arns) -> Result<Vec<Access>> {
    let service = signing_service(req).ok_or_else(|| anyhow!("an unsigned request"))?;
    let body: Value = req
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let target = header(req, "x-amz-target").unwrap_or_default();
    let op = target.rsplit('.').next().unwrap_or_default();
    let (region, account) = (&arns.region, &arns.account);
    let one = |action: String, resource: String| {
        Ok(vec![Access {
            action,
            resource,
            leading_keys: Vec::new(),
        }])
    };
    match service.as_str() {
        "dynamodb" => {
            let table = |name: &str| format!("arn:aws:dynamodb:{region}:{account}:table/{name}");
            let action = format!("dynamodb:{op}");
            let mut out = Vec::new();
            if let Some(t) = body.get("TableName").and_then(Value::as_str) {
                let resource = match body.get("IndexName").and_then(Value::as_str) {
                    Some(i) => format!("{}/index/{i}", table(t)),
                    None => table(t),
                };
                out.push(Access {
                    action: action.clone(),
                    resource,
                    leading_keys: partition_key(&body).into_iter().collect(),
                });
            }
            if let Some(items) = body.get("RequestItems").and_then(Value::as_object) {
                out.extend(items.iter().map(|(t, requests)| {
                    Access {
                        action: action.clone(),
                        resource: table(t),
                        leading_keys: requests
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| {
                                r.get("PutRequest")
                                    .or_else(|| r.get("DeleteRequest"))
                                    .and_then(partition_key)
                            })
                            .chain(
                                requests
                                    .get("Keys")
                                    .and_then(Value::as_array)
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|k| k.get("PK").and_then(|v| v.get("S")).and_then(Value::as_str))
                                    .map(str::to_string),
                            )
                            .collect(),
                    }
                }));
            }
            for item in body
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // A transaction needs the action of each of its parts.
                for (kind, part) in item.as_object().into_iter().flatten() {
                    let a = match kind.as_str() {
                        "Put" => "dynamodb:PutItem",
                        "Update" => "dynamodb:UpdateItem",
                        "Delete" => "dynamodb:DeleteItem",
                        "ConditionCheck" => "dynamodb:ConditionCheckItem",
                        "Get" => "dynamodb:GetItem",
                        _ => bail!("unknown transaction part {kind}"),
                    };
                    let t = part.get("TableName").and_then(Value::as_str).unwrap_or_default();
                    out.push(Access {
                        action: a.into(),
                        resource: table(t),
                        leading_keys: partition_key(part).into_iter().collect(),
                    });
                }
            }
            if out.is_empty() {
                bail!("dynamodb {op}: no table named");
            }
            Ok(out)
        }
        "kms" => one(format!("kms:{op}"), arns.kms_key.clone()),
        "sqs" => {
            let action = match op {
                "SendMessageBatch" => "SendMessage",
                "DeleteMessageBatch" => "DeleteMessage",
                "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                o => o,
            };
            let url = body.get("QueueUrl").and_then(Value::as_str).unwrap_or_default();
            let name = url.rsplit('/').next().unwrap_or_default();
            one(
                format!("sqs:{action}"),
                format!("arn:aws:sqs:{region}:{account}:{name}"),
            )
        }
        "events" => {
            let mut out = Vec::new();
            for e in body.get("Entries").and_then(Value::as_array).into_iter().flatten() {
                let bus = e.get("EventBusName").and_then(Value::as_str).unwrap_or("default");
                let resource = if bus.starts_with("arn:") {
                    bus.to_string()
                } else {
                    format!("arn:aws:events:{region}:{account}:event-bus/{bus}")
                };
                out.push(Access {
                    action: format!("events:{op}"),
                    resource,
                    leading_keys: Vec::new(),
                });
            }
            if out.is_empty() {
                bail!("events {op}: no entries");
            }
            Ok(out)
        }
        "s3" => s3_accesses(req),
        "cloudfront" => {
            // REST: /{version}/distribution/{id}/invalidation[/{invalidation}]
            let uri: http::Uri = req.uri().parse().map_err(|e| anyhow!("bad CloudFront URI: {e}"))?;
            let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
            let (id, action) = match (req.method().to_uppercase().as_str(), parts.as_slice()) {
                ("POST", [_, "distribution", id, "invalidation"]) => (*id, "cloudfront:CreateInvalidation"),
                ("GET", [_, "distribution", id, "invalidation"]) => (*id, "cloudfront:ListInvalidations"),
                ("GET", [_, "distribution", id, "invalidation", _]) => (*id, "cloudfront:GetInvalidation"),
                (m, p) => bail!("CloudFront {m} /{} is not mapped to an IAM action locally", p.join("/")),
            };
            let id = arns
                .distributions
                .iter()
                .find(|(_, emulator)| emulator == id)
                .map_or(id, |(template, _)| template.as_str());
            one(
                action.into(),
                format!("arn:aws:cloudfront::{account}:distribution/{id}"),
            )
        }
        other => bail!("service {other} is not mapped to IAM actions locally"),
    }
}

/// S3 (path-style addressing, as the SDK uses against the emulator): the action from the method, key and query.
fn s3_accesses(req: &HttpRequest) -> Result<Vec<Access>> {
    let uri: http::Uri = req.uri().parse().map_err(|e| anyhow!("bad S3 URI: {e}"))?;
    let path = uri.path().trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) if !k.is_empty() => (b.to_string(), Some(percent_decode(k))),
        Some((b, _)) => (b.to_string(), None),
        None => (path.to_string(), None),
    };
    let query = uri.query().unwrap_or_default();
    let has = |p: &str| query.split('&').any(|kv| kv.split('=').next() == Some(p));
    let method = req.method().to_uppercase();
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let action = match (method.as_str(), &key) {
        ("GET" | "HEAD", Some(_)) if has("uploadId") => "s3:ListMultipartUploadParts",
        ("GET" | "HEAD", Some(_)) => "s3:GetObject",
        ("GET", None) if has("uploads") => "s3:ListBucketMultipartUploads",
        ("GET", None) if has("location") => "s3:GetBucketLocation",
        ("GET" | "HEAD", None) => "s3:ListBucket",
        ("PUT", Some(_)) if has("tagging") => "s3:PutObjectTagging",
        ("PUT" | "POST", Some(_)) => "s3:PutObject",
        ("DELETE", Some(_)) if has("uploadId") => "s3:AbortMultipartUpload",
        ("DELETE", Some(_)) => "s3:DeleteObject",
        ("POST", None) if has("delete") => {
            // DeleteObjects: s3:DeleteObject on each key of the request.
            let body = req.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let keys: Vec<Access> = body
                .split("<Key>")
                .skip(1)
                .filter_map(|s| s.split("</Key>").next())
                .map(|k| Access {
                    action: "s3:DeleteObject".into(),
                    resource: format!("{bucket_arn}/{}", xml_unescape(k)),
                    leading_keys: Vec::new(),
                })
                .collect();
            if keys.is_empty() {
                bail!("DeleteObjects names no key");
            }
            return Ok(keys);
        }
        (m, _) => bail!("S3 {m} {path}?{query} is not mapped to an IAM action locally"),
    };
    let resource = match key {
        Some(k) => format!("{bucket_arn}/{k}"),
        None => bucket_arn,
    };
    Ok(vec![Access {
        action: action.into(),
        resource,
        leading_keys: Vec::new(),
    }])
}

/// The partition key (`PK`, this project's table) of a DynamoDB item or key in a request.
fn partition_key(v: &Value) -> Option<String> {
    v.get("Item")
        .or_else(|| v.get("Key"))
        .and_then(|k| k.get("PK"))
        .and_then(|pk| pk.get("S"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Requests a role refused: (function, action, resource).
pub type Denials = Arc<Mutex<Vec<(String, String, String)>>>;

/// An HTTP client that sends a request on only when the role allows it.
#[derive(Debug, Clone)]
pub struct RoleClient {
    inner: SharedHttpClient,
    role: Arc<Role>,
    arns: Arc<Arns>,
    denials: Denials,
}

impl RoleClient {
    pub fn new(inner: SharedHttpClient, role: Role, arns: Arns, denials: Denials) -> Self {
        RoleClient {
            inner,
            role: Arc::new(role),
            arns: Arc::new(arns),
            denials,
        }
    }
}

impl HttpClient for RoleClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(RoleConnector {
            inner: self.inner.http_connector(settings, components),
            client: self.clone(),
        })
    }
}

#[derive(Debug)]
struct RoleConnector {
    inner: SharedHttpConnector,
    client: RoleClient,
}

impl HttpConnector for RoleConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let c = &self.client;
        let refused = match accesses(&request, &c.arns) {
            Ok(list) => list.into_iter().find(|a| !c.role.allows(a)),
            Err(e) => Some(Access {
                action: format!("unmapped: {e}"),
                resource: String::new(),
                leading_keys: Vec::new(),
            }),
        };
        let Some(denied) = refused else {
            return self.inner.call(request);
        };
        warn!(function = %c.role.function, action = %denied.action, resource = %denied.resource,
            "AccessDenied: the function's role in template.yaml does not allow this request");
        if let Ok(mut d) = c.denials.lock() {
            d.push((c.role.function.clone(), denied.action.clone(), denied.resource.clone()));
        }
        let message = format!(
            "User: arn:aws:sts::local:assumed-role/{}/local is not authorized to perform: {} on resource: {}",
            c.role.function, denied.action, denied.resource
        );
        let s3 = signing_service(&request).as_deref() == Some("s3");
        let (status, body, content_type) = if s3 {
            (
                403u16,
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"),
                "application/xml",
            )
        } else {
            (
                400u16,
                serde_json::json!({"__type": "AccessDeniedException", "message": message}).to_string(),
                "application/x-amz-json-1.0",
            )
        };
        let mut response = HttpResponse::new(
            status
                .try_into()
                .unwrap_or_else(|_| 403u16.try_into().expect("403 is a status")),
            SdkBody::from(body),
        );
        response.headers_mut().insert("content-type", content_type);
        response
            .headers_mut()
            .insert("x-amzn-errortype", "AccessDeniedException");
        HttpConnectorFuture::ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(v: Value) -> Role {
        Role::from_policies("F", &v).expect("policies")
    }

    #[test]
    fn statements_allow_and_deny_as_iam_does() {
        let r = role(serde_json::json!([{"Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "s3:Get*"], "Resource": ["arn:aws:dynamodb:r:1:table/t", "arn:aws:s3:::b/*"]},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"}]}]));
        let a = |action: &str, resource: &str| Access {
            action: action.into(),
            resource: resource.into(),
            leading_keys: Vec::new(),
        };
        assert!(r.allows(&a("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t")));
        assert!(
            r.allows(&a("DynamoDB:getitem", "arn:aws:dynamodb:r:1:table/t")),
            "actions ignore case"
        );
        assert!(!r.allows(&a("dynamodb:PutItem", "arn:aws:dynamodb:r:1:table/t")));
        assert!(!r.allows(&a("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t/index/GSI1")));
        assert!(r.allows(&a("s3:GetObject", "arn:aws:s3:::b/x/y.mp4")));
        assert!(
            !r.allows(&a("s3:GetObject", "arn:aws:s3:::b/secret/k")),
            "explicit deny wins"
        );
        assert!(!r.allows(&a("s3:GetObject", "arn:aws:s3:::other/x")));
        assert!(
            !role(Value::Null).allows(&a("s3:GetObject", "arn:aws:s3:::b/x")),
            "nothing by default"
        );
        assert!(Role::from_policies("F", &serde_json::json!(["AmazonS3FullAccess"])).is_err());
        assert!(glob("a*b?d", "axxxbcd") && !glob("a*b?d", "axxxbd") && glob("*", ""));
    }
}
