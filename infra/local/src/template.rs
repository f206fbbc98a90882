//! Reads the SAM template and resolves what the local stack needs: buckets (with notifications), queues (with
//! redrive), tables (keys, GSIs, TTL) and functions (environment, SQS and HTTP events). CloudFormation intrinsics
//! used by the template (Ref, GetAtt, Sub, If, Not, Equals) are evaluated for the local account and region.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// Account and region that the emulator uses.
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// Stands for the CloudFront distribution's domain locally; `https://` + this is replaced by the gateway's URL.
pub const LOCAL_CDN_HOST: &str = "local-cdn.invalid";

/// A parsed template (YAML short-form tags normalised to `Fn::` objects).
#[derive(Debug, Clone)]
pub struct Template {
    doc: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueNotification {
    pub queue: String,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BucketSpec {
    pub logical_id: String,
    pub name: String,
    pub notifications: Vec<QueueNotification>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub name: String,
    pub visibility_timeout: u32,
    pub retention: Option<u32>,
    /// Dead-letter queue (logical id) and max receive count.
    pub redrive: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyElement {
    pub name: String,
    pub hash: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub keys: Vec<KeyElement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    /// Attribute name → type (S, N, B).
    pub attributes: Vec<(String, String)>,
    pub keys: Vec<KeyElement>,
    pub gsis: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqsEventSpec {
    pub queue: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    /// Its API's `DefaultRouteSettings` throttling, as API Gateway applies it to each route.
    pub throttle: Option<Throttle>,
}

/// API Gateway's route throttling: a token bucket of `burst` requests refilled at `rate` per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub rate: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary that implements it (`BuildProperties.Binary`).
    pub binary: String,
    pub timeout_secs: u32,
    pub environment: BTreeMap<String, String>,
    pub sqs_events: Vec<SqsEventSpec>,
    pub http_routes: Vec<HttpRoute>,
    /// The period of its `Schedule` event (`rate(…)`), if any.
    pub schedule: Option<std::time::Duration>,
    /// The function's permissions (its `Policies`), enforced on its AWS requests by the local host.
    pub role: crate::iam::Role,
}

/// The period of an EventBridge `rate(N unit)` expression (cron expressions are not run locally).
pub fn parse_rate(expr: &str) -> Result<std::time::Duration> {
    let inner = expr
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| anyhow!("schedule {expr}: only rate(N unit) expressions run locally"))?;
    let (n, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow!("schedule {expr}: rate(N unit)"))?;
    let n: u64 = n.parse().map_err(|_| anyhow!("schedule {expr}: {n} is not a number"))?;
    let secs = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(anyhow!("schedule {expr}: unknown unit {other}")),
    };
    if n == 0 {
        return Err(anyhow!("schedule {expr}: the rate must be positive"));
    }
    Ok(std::time::Duration::from_secs(n * secs))
}

/// Every resource of the stack that the local stack creates or runs, with names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    pub region: String,
    pub buckets: Vec<BucketSpec>,
    pub queues: Vec<QueueSpec>,
    pub tables: Vec<TableSpec>,
    pub functions: Vec<FunctionSpec>,
    /// EventBridge buses (names).
    pub event_buses: Vec<String>,
    /// KMS keys to create, by alias (`alias/…`).
    pub kms_aliases: Vec<String>,
    /// The ARN the functions' policies give the content KMS key (its logical ARN locally, or the given key's).
    pub kms_key_arn: Option<String>,
    /// CloudFront distributions: the id the template's references resolve to, and (once provisioned on the
    /// emulator) the emulator's id for it.
    pub distributions: Vec<(String, Option<String>)>,
}

impl StackSpec {
    pub fn queue(&self, logical_id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }
    pub fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
    pub fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{LOCAL_ACCOUNT}:{name}", self.region)
    }
}

fn yaml_to_json(v: serde_norway::Value) -> Result<Value> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect::<Result<_>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    other => serde_norway::to_string(&other)?.trim().to_string(),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = yaml_to_json(t.value)?;
            let (name, inner) = match tag {
                "Ref" => ("Ref".to_string(), inner),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (a, b) = s.split_once('.').ok_or_else(|| anyhow!("bad !GetAtt {s}"))?;
                            Value::Array(vec![a.into(), b.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), parts)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut m = Map::new();
            m.insert(name, inner);
            Value::Object(m)
        }
    })
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let y: serde_norway::Value = serde_norway::from_str(text).context("template is not valid YAML")?;
        Ok(Template { doc: yaml_to_json(y)? })
    }

    /// Resolves the stack for `params` (overriding the template's defaults) in `region`.
    pub fn resolve(&self, params: &BTreeMap<String, String>, region: &str) -> Result<StackSpec> {
        let mut values = BTreeMap::new();
        if let Some(ps) = self.doc.get("Parameters").and_then(Value::as_object) {
            for (name, p) in ps {
                let v = match params.get(name) {
                    Some(v) => v.clone(),
                    None => match p.get("Default") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        _ => bail!("parameter {name} has no default and no value"),
                    },
                };
                values.insert(name.clone(), v);
            }
        }
        for name in params.keys() {
            if !values.contains_key(name) {
                bail!("template has no parameter {name}");
            }
        }
        let resources = self
            .doc
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("template has no Resources"))?;
        let ctx = Ctx {
            params: values,
            region: region.to_string(),
            resources,
            doc: &self.doc,
        };
        let globals_env = self
            .doc
            .pointer("/Globals/Function/Environment/Variables")
            .cloned()
            .unwrap_or(Value::Null);
        let global_timeout = self.doc.pointer("/Globals/Function/Timeout").and_then(Value::as_u64);

        let mut spec = StackSpec {
            region: region.into(),
            buckets: vec![],
            queues: vec![],
            tables: vec![],
            functions: vec![],
            event_buses: vec![],
            kms_aliases: vec![],
            kms_key_arn: values_kms_arn(&ctx),
            distributions: vec![],
        };
        for (id, res) in resources {
            if let Some(c) = res.get("Condition").and_then(Value::as_str) {
                if !ctx.condition(c)? {
                    continue;
                }
            }
            let ty = res.get("Type").and_then(Value::as_str).unwrap_or_default();
            let props = res.get("Properties").cloned().unwrap_or(Value::Object(Map::new()));
            match ty {
                "AWS::S3::Bucket" => spec.buckets.push(ctx.bucket(id, &props)?),
                "AWS::SQS::Queue" => spec.queues.push(ctx.queue(id, &props)?),
                "AWS::DynamoDB::Table" => spec.tables.push(ctx.table(id, &props)?),
                "AWS::Events::EventBus" => spec.event_buses.push(ctx.physical_name(id)?),
                "AWS::KMS::Key" => spec.kms_key_arn = Some(ctx.get_att(id, "Arn")?),
                "AWS::CloudFront::Distribution" => spec.distributions.push((ctx.physical_name(id)?, None)),
                "AWS::KMS::Alias" => spec.kms_aliases.push(str_of(
                    &ctx.eval(props.get("AliasName").ok_or_else(|| anyhow!("{id}: no AliasName"))?)?,
                )?),
                "AWS::Serverless::Function" => {
                    spec.functions
                        .push(ctx.function(id, res, &props, &globals_env, global_timeout)?)
                }
                _ => {}
            }
        }
        Ok(spec)
    }
}

/// The content key ARN given as a parameter, if any (a key created by the template replaces it).
fn values_kms_arn(ctx: &Ctx) -> Option<String> {
    ctx.params.get("ContentKeyKmsKeyArn").filter(|v| !v.is_empty()).cloned()
}

struct Ctx<'a> {
    params: BTreeMap<String, String>,
    region: String,
    resources: &'a Map<String, Value>,
    doc: &'a Value,
}

fn str_of(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a string, found {other}"),
    }
}

impl Ctx<'_> {
    fn resource_type(&self, id: &str) -> Option<&str> {
        self.resources
            .get(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
    }

    /// Physical name of a resource: its name property, evaluated, or `<prefix>-<logical id>` if it has none.
    fn physical_name(&self, id: &str) -> Result<String> {
        let res = self.resources.get(id).ok_or_else(|| anyhow!("unknown resource {id}"))?;
        let prop = match self.resource_type(id) {
            Some("AWS::S3::Bucket") => "BucketName",
            Some("AWS::SQS::Queue") => "QueueName",
            Some("AWS::DynamoDB::Table") => "TableName",
            _ => "Name",
        };
        match res.pointer(&format!("/Properties/{prop}")) {
            Some(v) => str_of(&self.eval(v)?),
            None => Ok(format!(
                "{}-{}",
                self.params.get("ResourcePrefix").map(String::as_str).unwrap_or("stack"),
                id.to_lowercase()
            )),
        }
    }

    fn reference(&self, name: &str) -> Result<String> {
        if let Some(v) = self.params.get(name) {
            return Ok(v.clone());
        }
        match name {
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT.into()),
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::StackName" => {
                return Ok(self
                    .params
                    .get("ResourcePrefix")
                    .cloned()
                    .unwrap_or_else(|| "local".into()))
            }
            _ => {}
        }
        let physical = self.physical_name(name)?;
        Ok(match self.resource_type(name) {
            Some("AWS::SQS::Queue") => format!("http://local/{LOCAL_ACCOUNT}/{physical}"),
            _ => physical,
        })
    }

    fn get_att(&self, id: &str, attr: &str) -> Result<String> {
        let name = self.physical_name(id)?;
        Ok(match (self.resource_type(id), attr) {
            (Some("AWS::SQS::Queue"), "Arn") => {
                format!("arn:aws:sqs:{}:{LOCAL_ACCOUNT}:{name}", self.region)
            }
            (Some("AWS::SQS::Queue"), "QueueName") => name,
            (Some("AWS::S3::Bucket"), "Arn") => format!("arn:aws:s3:::{name}"),
            (Some("AWS::Events::EventBus"), "Arn") => {
                format!("arn:aws:events:{}:{LOCAL_ACCOUNT}:event-bus/{name}", self.region)
            }
            // Locally the emulator picks key ids: a KMS key stands for itself by its logical id.
            (Some("AWS::KMS::Key"), "Arn") => format!("arn:aws:kms:{}:{LOCAL_ACCOUNT}:key/{id}", self.region),
            (Some("AWS::DynamoDB::Table"), "Arn") => {
                format!("arn:aws:dynamodb:{}:{LOCAL_ACCOUNT}:table/{name}", self.region)
            }
            // The CDN does not exist locally: the local stack serves its paths on the gateway and rewrites this
            // placeholder host to the gateway's address.
            (Some("AWS::CloudFront::Distribution"), "DomainName") => LOCAL_CDN_HOST.to_string(),
            (ty, _) => bail!("GetAtt {id}.{attr} ({ty:?}) is not supported locally"),
        })
    }

    fn condition(&self, name: &str) -> Result<bool> {
        let c = self
            .doc
            .pointer(&format!("/Conditions/{name}"))
            .ok_or_else(|| anyhow!("unknown condition {name}"))?;
        self.eval_bool(c)
    }

    fn eval_bool(&self, v: &Value) -> Result<bool> {
        if let Some(obj) = v.as_object() {
            if let Some(args) = obj.get("Fn::Not").and_then(Value::as_array) {
                return Ok(!self.eval_bool(args.first().ok_or_else(|| anyhow!("empty Fn::Not"))?)?);
            }
            if let Some(args) = obj.get("Fn::Equals").and_then(Value::as_array) {
                if args.len() != 2 {
                    bail!("Fn::Equals needs two arguments");
                }
                return Ok(str_of(&self.eval(&args[0])?)? == str_of(&self.eval(&args[1])?)?);
            }
            if let Some(name) = obj.get("Condition").and_then(Value::as_str) {
                return self.condition(name);
            }
        }
        bail!("unsupported condition {v}")
    }

    fn sub(&self, template: &str, vars: Option<&Map<String, Value>>) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| anyhow!("unclosed ${{ in {template}"))?;
            let name = &after[..end];
            let value = if let Some(v) = vars.and_then(|m| m.get(name)) {
                str_of(&self.eval(v)?)?
            } else if let Some((id, attr)) = name.split_once('.') {
                self.get_att(id, attr)?
            } else {
                self.reference(name)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Evaluates intrinsic functions; `Value::Null` stands for `AWS::NoValue`.
    fn eval(&self, v: &Value) -> Result<Value> {
        match v {
            Value::Object(obj) if obj.len() == 1 => {
                let (k, arg) = obj.iter().next().ok_or_else(|| anyhow!("empty object"))?;
                match k.as_str() {
                    "Ref" => {
                        let name = str_of(arg)?;
                        if name == "AWS::NoValue" {
                            return Ok(Value::Null);
                        }
                        Ok(Value::String(self.reference(&name)?))
                    }
                    "Fn::GetAtt" => {
                        let parts = arg.as_array().ok_or_else(|| anyhow!("bad GetAtt"))?;
                        let (id, attr) = match parts.as_slice() {
                            [a, b] => (str_of(a)?, str_of(b)?),
                            _ => bail!("bad GetAtt {arg}"),
                        };
                        Ok(Value::String(self.get_att(&id, &attr)?))
                    }
                    "Fn::Sub" => match arg {
                        Value::String(s) => Ok(Value::String(self.sub(s, None)?)),
                        Value::Array(a) if a.len() == 2 => {
                            Ok(Value::String(self.sub(&str_of(&a[0])?, a[1].as_object())?))
                        }
                        _ => bail!("bad Fn::Sub {arg}"),
                    },
                    "Fn::If" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 3)
                            .ok_or_else(|| anyhow!("bad Fn::If"))?;
                        let cond = self.condition(&str_of(&a[0])?)?;
                        self.eval(if cond { &a[1] } else { &a[2] })
                    }
                    "Fn::Join" => {
                        let a = arg
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| anyhow!("bad Fn::Join"))?;
                        let sep = str_of(&a[0])?;
                        let items = self.eval(&a[1])?;
                        let parts = items
                            .as_array()
                            .ok_or_else(|| anyhow!("Fn::Join needs a list"))?
                            .iter()
                            .map(str_of)
                            .collect::<Result<Vec<_>>>()?;
                        Ok(Value::String(parts.join(&sep)))
                    }
                    k if k.starts_with("Fn::") => bail!("intrinsic {k} is not supported locally"),
                    _ => Ok(Value::Object(self.eval_map(obj)?)),
                }
            }
            Value::Object(obj) => Ok(Value::Object(self.eval_map(obj)?)),
            Value::Array(a) => Ok(Value::Array(
                a.iter()
                    .map(|x| self.eval(x))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|x| !x.is_null())
                    .collect(),
            )),
            other => Ok(other.clone()),
        }
    }

    fn eval_map(&self, obj: &Map<String, Value>) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        for (k, v) in obj {
            let e = self.eval(v)?;
            if !e.is_null() {
                out.insert(k.clone(), e);
            }
        }
        Ok(out)
    }

    /// Logical id of the queue that an ARN expression (`!GetAtt Q.Arn`) names.
    /// The throttling of API `api`'s routes (its `DefaultRouteSettings`), if it sets one.
    fn route_throttle(&self, api: &str) -> Result<Option<Throttle>> {
        let Some(settings) = self
            .resources
            .get(api)
            .and_then(|r| r.pointer("/Properties/DefaultRouteSettings"))
        else {
            return Ok(None);
        };
        let number = |key: &str| -> Result<Option<f64>> {
            settings
                .get(key)
                .map(|v| {
                    let e = self.eval(v)?;
                    e.as_f64()
                        .or_else(|| e.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| anyhow!("{api}.DefaultRouteSettings.{key}: {e} is not a number"))
                })
                .transpose()
        };
        Ok(
            match (number("ThrottlingRateLimit")?, number("ThrottlingBurstLimit")?) {
                (Some(rate), Some(burst)) => Some(Throttle {
                    rate,
                    burst: burst as u32,
                }),
                _ => None,
            },
        )
    }

    fn queue_id_of(&self, v: &Value) -> Result<String> {
        if let Some(parts) = v.get("Fn::GetAtt").and_then(Value::as_array) {
            if let Some(id) = parts.first().and_then(Value::as_str) {
                return Ok(id.to_string());
            }
        }
        let arn = str_of(&self.eval(v)?)?;
        for (id, _) in self
            .resources
            .iter()
            .filter(|(id, _)| self.resource_type(id) == Some("AWS::SQS::Queue"))
        {
            if self.get_att(id, "Arn")? == arn {
                return Ok(id.clone());
            }
        }
        bail!("{arn} is not a queue of this template")
    }

    fn bucket(&self, id: &str, props: &Value) -> Result<BucketSpec> {
        let mut notifications = Vec::new();
        if let Some(qs) = props
            .pointer("/NotificationConfiguration/QueueConfigurations")
            .and_then(Value::as_array)
        {
            for q in qs {
                let queue = self.queue_id_of(
                    q.get("Queue")
                        .ok_or_else(|| anyhow!("{id}: notification without Queue"))?,
                )?;
                let event = str_of(&self.eval(q.get("Event").unwrap_or(&Value::Null))?)?;
                notifications.push(QueueNotification {
                    queue,
                    events: vec![event],
                });
            }
        }
        Ok(BucketSpec {
            logical_id: id.into(),
            name: self.physical_name(id)?,
            notifications,
        })
    }

    fn queue(&self, id: &str, props: &Value) -> Result<QueueSpec> {
        let props = self.eval(props)?;
        let num = |k: &str| {
            props
                .get(k)
                .map(str_of)
                .transpose()
                .map(|o| o.and_then(|s| s.parse::<u32>().ok()))
        };
        let redrive = match self
            .resources
            .get(id)
            .and_then(|r| r.pointer("/Properties/RedrivePolicy"))
        {
            None => None,
            Some(rp) => {
                let dlq = self.queue_id_of(
                    rp.get("deadLetterTargetArn")
                        .ok_or_else(|| anyhow!("{id}: redrive without target"))?,
                )?;
                let max = str_of(&self.eval(rp.get("maxReceiveCount").unwrap_or(&Value::from(10)))?)?
                    .parse::<u32>()
                    .context("maxReceiveCount")?;
                Some((dlq, max))
            }
        };
        Ok(QueueSpec {
            logical_id: id.into(),
            name: self.physical_name(id)?,
            visibility_timeout: num("VisibilityTimeout")?.unwrap_or(30),
            retention: num("MessageRetentionPeriod")?,
            redrive,
        })
    }

    fn keys(v: Option<&Value>) -> Result<Vec<KeyElement>> {
        v.and_then(Value::as_array)
            .ok_or_else(|| anyhow!("KeySchema missing"))?
            .iter()
            .map(|k| {
                Ok(KeyElement {
                    name: str_of(k.get("AttributeName").unwrap_or(&Value::Null))?,
                    hash: k.get("KeyType").and_then(Value::as_str) == Some("HASH"),
                })
            })
            .collect()
    }

    fn table(&self, id: &str, props: &Value) -> Result<TableSpec> {
        let props = self.eval(props)?;
        let attributes = props
            .get("AttributeDefinitions")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("{id}: AttributeDefinitions missing"))?
            .iter()
            .map(|a| Ok((str_of(&a["AttributeName"])?, str_of(&a["AttributeType"])?)))
            .collect::<Result<Vec<_>>>()?;
        let gsis = props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .map(|i| {
                        Ok(IndexSpec {
                            name: str_of(&i["IndexName"])?,
                            keys: Self::keys(i.get("KeySchema"))?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let ttl_attribute = props
            .get("TimeToLiveSpecification")
            .filter(|t| t.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
            .and_then(|t| t.get("AttributeName"))
            .map(str_of)
            .transpose()?;
        Ok(TableSpec {
            logical_id: id.into(),
            name: self.physical_name(id)?,
            attributes,
            keys: Self::keys(props.get("KeySchema"))?,
            gsis,
            ttl_attribute,
        })
    }

    fn function(
        &self,
        id: &str,
        res: &Value,
        props: &Value,
        globals_env: &Value,
        global_timeout: Option<u64>,
    ) -> Result<FunctionSpec> {
        let binary = res
            .pointer("/Metadata/BuildProperties/Binary")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{id}: Metadata.BuildProperties.Binary missing"))?
            .to_string();
        let mut environment = BTreeMap::new();
        for vars in [
            globals_env,
            props.pointer("/Environment/Variables").unwrap_or(&Value::Null),
        ] {
            if let Some(m) = vars.as_object() {
                for (k, v) in m {
                    let e = self.eval(v)?;
                    if !e.is_null() {
                        environment.insert(k.clone(), str_of(&e)?);
                    }
                }
            }
        }
        let mut sqs_events = Vec::new();
        let mut http_routes = Vec::new();
        let mut schedule = None;
        if let Some(events) = props.get("Events").and_then(Value::as_object) {
            for (name, ev) in events {
                let p = ev.get("Properties").cloned().unwrap_or(Value::Null);
                match ev.get("Type").and_then(Value::as_str) {
                    Some("SQS") => sqs_events.push(SqsEventSpec {
                        queue: self.queue_id_of(p.get("Queue").ok_or_else(|| anyhow!("{id}.{name}: no Queue"))?)?,
                        batch_size: p
                            .get("BatchSize")
                            .map(|b| str_of(&self.eval(b)?))
                            .transpose()?
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(10),
                        report_batch_item_failures: p
                            .get("FunctionResponseTypes")
                            .and_then(Value::as_array)
                            .is_some_and(|a| a.iter().any(|t| t == "ReportBatchItemFailures")),
                    }),
                    Some("Schedule") => {
                        let expr = self.eval(p.get("Schedule").ok_or_else(|| anyhow!("{id}.{name}: no Schedule"))?)?;
                        schedule = Some(parse_rate(&str_of(&expr)?)?);
                    }
                    Some("HttpApi") => http_routes.push(HttpRoute {
                        method: str_of(p.get("Method").unwrap_or(&Value::from("ANY")))?.to_uppercase(),
                        path: str_of(p.get("Path").unwrap_or(&Value::from("/{proxy+}")))?,
                        throttle: match p.pointer("/ApiId/Ref").and_then(Value::as_str) {
                            Some(api) => self.route_throttle(api)?,
                            None => None,
                        },
                    }),
                    _ => {}
                }
            }
        }
        // A literal or a resolved parameter (`!Ref EncodeTimeoutSeconds`), as Lambda enforces it.
        let timeout_secs = match props.get("Timeout") {
            Some(t) => {
                let v = self.eval(t)?;
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| anyhow!("{id}: Timeout {v} is not a number of seconds"))?
            }
            None => global_timeout.unwrap_or(3),
        } as u32;
        Ok(FunctionSpec {
            logical_id: id.into(),
            binary,
            timeout_secs,
            environment,
            sqs_events,
            http_routes,
            schedule,
            role: crate::iam::Role::from_policies(id, &self.eval(props.get("Policies").unwrap_or(&Value::Null))?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_template() -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        Template::load(&path).expect("template.yaml parses")
    }

    /// What AWS runs is hardened (issue 15 items 5, 6, 9): TLS-only buckets, an alarm per dead-letter queue and per
    /// function, access logs on both APIs, throttling and reserved concurrency on the public stream functions, the
    /// webhook secret only where events are signed, storage keys decryptable where storage is read, and no function
    /// but the API writes content keys or key policies.
    #[test]
    fn the_template_hardens_what_aws_runs() {
        use crate::iam::Access;
        let t = repo_template();
        let resources = t.doc["Resources"].as_object().expect("resources");
        let of_type = |ty: &str| -> Vec<&String> {
            resources
                .iter()
                .filter(|(_, r)| r["Type"] == ty)
                .map(|(id, _)| id)
                .collect()
        };
        for bucket in of_type("AWS::S3::Bucket") {
            let tls_only = resources.values().any(|r| {
                r["Type"] == "AWS::S3::BucketPolicy"
                    && r["Properties"]["Bucket"]["Ref"] == bucket.as_str()
                    && r["Properties"]["PolicyDocument"]["Statement"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
            });
            assert!(tls_only, "{bucket} refuses requests without TLS");
        }
        let alarmed = |id: &str| {
            resources.values().any(|r| {
                r["Type"] == "AWS::CloudWatch::Alarm"
                    && r["Properties"]["Dimensions"].to_string().contains(&format!("\"{id}\""))
                    && r["Properties"]["AlarmActions"].is_array()
            })
        };
        for id in of_type("AWS::SQS::Queue")
            .into_iter()
            .filter(|q| q.contains("DeadLetter"))
        {
            assert!(alarmed(id), "{id} has an alarm");
        }
        for id in of_type("AWS::Serverless::Function") {
            assert!(alarmed(id), "{id} has an errors alarm");
        }
        for api in of_type("AWS::Serverless::HttpApi") {
            assert!(
                resources[api]["Properties"]["AccessLogSettings"]["DestinationArn"].is_object(),
                "{api} writes access logs"
            );
        }
        let throttle = &resources["StreamApi"]["Properties"]["DefaultRouteSettings"];
        assert_eq!(throttle["ThrottlingRateLimit"]["Ref"], "StreamThrottlingRateLimit");
        assert_eq!(throttle["ThrottlingBurstLimit"]["Ref"], "StreamThrottlingBurstLimit");
        for f in ["PackagerFunction", "KeysFunction"] {
            assert!(
                resources[f]["Properties"]["ReservedConcurrentExecutions"].is_object(),
                "{f} has a reserved-concurrency parameter"
            );
        }
        let spec = t.resolve(&BTreeMap::new(), "us-east-1").expect("resolves");
        let table = spec.tables[0].name.clone();
        let write = |pk: &str| Access {
            action: "dynamodb:PutItem".into(),
            resource: format!("arn:aws:dynamodb:us-east-1:{LOCAL_ACCOUNT}:table/{table}"),
            leading_keys: vec![pk.to_string()],
        };
        let kms_decrypt = Access {
            action: "kms:Decrypt".into(),
            resource: spec.kms_key_arn.clone().expect("the stack's key"),
            leading_keys: Vec::new(),
        };
        for f in &spec.functions {
            let signs = matches!(f.binary.as_str(), "api" | "ingest" | "encode" | "sweeper");
            assert_eq!(
                f.environment.contains_key("WEBHOOK_SECRET"),
                signs,
                "{}: the webhook secret only where job events are signed",
                f.logical_id
            );
            let writes_keys = f.role.allows(&write("KEYPOLICIES")) || f.role.allows(&write("CONTENTKEY#k"));
            assert_eq!(
                writes_keys,
                f.binary == "api",
                "{}: only the API writes key policies and content keys",
                f.logical_id
            );
            if matches!(f.binary.as_str(), "ingest" | "encode" | "sweeper") {
                assert!(
                    f.role.allows(&write("JOB#j")),
                    "{} still writes its own records",
                    f.logical_id
                );
            }
            if matches!(f.binary.as_str(), "ingest" | "encode" | "packager" | "keys") {
                assert!(
                    f.role.allows(&kms_decrypt),
                    "{} reads storage-encrypted data or keys",
                    f.logical_id
                );
            }
        }
    }

    /// The API's documentation and its routes in template.yaml list the same operations.
    #[test]
    fn openapi_documents_every_api_route() {
        let mut params = BTreeMap::new();
        params.insert("ResourcePrefix".to_string(), "t1".to_string());
        let spec = repo_template().resolve(&params, "us-east-1").unwrap();
        let doc: serde_json::Value = serde_json::from_str(vod_app::api::OPENAPI).unwrap();
        let api = spec.function("ApiFunction").unwrap();
        let mut routed = std::collections::BTreeSet::new();
        for r in &api.http_routes {
            let op = &doc["paths"][r.path.as_str()][r.method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is routed but not in openapi.json",
                r.method,
                r.path
            );
            routed.insert((r.path.clone(), r.method.to_ascii_lowercase()));
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
                assert!(
                    routed.contains(&(path.clone(), method.clone())),
                    "{method} {path} is documented but not routed in template.yaml"
                );
            }
        }
    }

    #[test]
    fn resolves_the_repository_template() {
        let mut params = BTreeMap::new();
        params.insert("ResourcePrefix".to_string(), "t1".to_string());
        let spec = repo_template().resolve(&params, "us-east-1").unwrap();
        let upload = spec.buckets.iter().find(|b| b.logical_id == "UploadBucket").unwrap();
        assert_eq!(upload.name, "t1-uploads-123456789012-us-east-1");
        assert_eq!(upload.notifications[0].queue, "IngestQueue");
        let q = spec.queue("IngestQueue").unwrap();
        assert_eq!(q.redrive, Some(("IngestDeadLetterQueue".to_string(), 5)));
        assert_eq!(q.visibility_timeout, 360);
        let table = &spec.tables[0];
        assert_eq!(table.name, "t1-vod");
        assert_eq!(table.gsis[0].name, "GSI1");
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
        let ingest = spec.function("IngestFunction").unwrap();
        assert_eq!(ingest.binary, "ingest");
        assert_eq!(ingest.environment["TABLE_NAME"], "t1-vod");
        assert_eq!(ingest.environment["UPLOAD_BUCKET"], upload.name);
        assert!(ingest.sqs_events[0].report_batch_item_failures);
        let api = spec.function("ApiFunction").unwrap();
        assert!(api
            .http_routes
            .iter()
            .any(|r| r.method == "GET" && r.path == "/assets/{id}"));
        // The stream API's throttling reaches its routes (the management API sets none).
        let throttle = Some(Throttle {
            rate: 2000.0,
            burst: 4000,
        });
        for f in ["PackagerFunction", "KeysFunction"] {
            let routes = &spec.function(f).expect("the stream API's functions").http_routes;
            assert!(
                !routes.is_empty() && routes.iter().all(|r| r.throttle == throttle),
                "{f}"
            );
        }
        assert!(api.http_routes.iter().all(|r| r.throttle.is_none()));
    }

    #[test]
    fn every_api_route_is_documented_in_openapi() {
        let mut params = BTreeMap::new();
        params.insert("ResourcePrefix".to_string(), "t1".to_string());
        let spec = repo_template().resolve(&params, "us-east-1").unwrap();
        let doc: Value = serde_json::from_str(vod_app::api::OPENAPI).unwrap();
        let api = spec.function("ApiFunction").unwrap();
        assert!(api.http_routes.len() > 20);
        for r in &api.http_routes {
            let op = doc["paths"][&r.path][r.method.to_lowercase()].clone();
            assert!(op.is_object(), "{} {} is not in openapi.json", r.method, r.path);
        }
        let packager = spec.function("PackagerFunction").unwrap();
        assert!(packager.http_routes.iter().all(|r| r.path == "/stream/{proxy+}"));
        // The CDN placeholder that the local stack rewrites to its gateway.
        assert_eq!(
            api.environment["STREAM_BASE_URL"],
            format!("https://{LOCAL_CDN_HOST}/stream")
        );
    }

    #[test]
    fn rejects_unknown_parameters_and_intrinsics() {
        let mut params = BTreeMap::new();
        params.insert("Nope".to_string(), "x".to_string());
        assert!(repo_template().resolve(&params, "us-east-1").is_err());
        let t = Template::parse(
            "Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Select [0, [a]]\n",
        )
        .unwrap();
        assert!(t.resolve(&BTreeMap::new(), "us-east-1").is_err());
    }
}
