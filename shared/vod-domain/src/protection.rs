//! Content protection: ContentKey (a 128-bit AES key with its key id, stored only wrapped by the KeyService),
//! KeyPolicy (who may receive a key: open, or a JWT token restriction), DeliveryPolicy (per asset: which protocols
//! stream with which protection and DRM systems), AMS's rules over them, and token verification.
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{DomainError, StoreError};
use crate::model::{AssetId, AssetState};
use crate::ports::AssetStore;

/// A content key id (the KID of CENC, 16 bytes), written as a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub Uuid);

impl KeyId {
    pub fn new_random() -> Self {
        KeyId(Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(KeyId)
    }
    pub fn bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Self {
        KeyId(Uuid::from_bytes(b))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A content key as stored: the key itself only wrapped by the key service (KMS), bound to its asset and kid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentKey {
    pub kid: KeyId,
    pub asset_id: AssetId,
    /// Ciphertext from the key service (base64), never the key.
    pub wrapped: String,
    /// The key policy that decides who receives it.
    pub key_policy: String,
    pub created_at: DateTime<Utc>,
    /// When it was retired: a retired key is never released again and never used to encrypt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

/// What may be said about a content key outside the key service: no key material.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentKeyView {
    pub kid: KeyId,
    pub asset_id: AssetId,
    pub key_policy: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<&ContentKey> for ContentKeyView {
    fn from(k: &ContentKey) -> Self {
        ContentKeyView {
            kid: k.kid,
            asset_id: k.asset_id,
            key_policy: k.key_policy.clone(),
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

/// Envelope encryption of secrets (KMS in AWS). `context` is bound to the ciphertext (KMS encryption context):
/// unwrapping with another context fails.
#[async_trait]
pub trait KeyService: Send + Sync {
    /// A fresh random secret of `len` bytes, with its wrapped form.
    async fn generate(
        &self,
        len: usize,
        context: &[(&str, String)],
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), StoreError>;
    async fn wrap(&self, plaintext: &[u8], context: &[(&str, String)]) -> Result<Vec<u8>, StoreError>;
    async fn unwrap(&self, wrapped: &[u8], context: &[(&str, String)]) -> Result<Zeroizing<Vec<u8>>, StoreError>;
}

/// A key that verifies token signatures. Symmetric secrets are accepted in `key` (base64) and stored only
/// `wrapped` by the key service; public keys are PEM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum VerificationKey {
    /// HS256/384/512.
    Symmetric {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wrapped: Option<String>,
    },
    /// RS256/384/512, PS256.
    Rsa { pem: String },
    /// ES256/384.
    Ecdsa { pem: String },
}

/// A claim a token must carry; with no `value` it merely has to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredClaim {
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// AMS's token restriction (JWT only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRestriction {
    pub issuer: String,
    pub audience: String,
    pub primary_key: VerificationKey,
    /// Further keys tried in turn (rotation).
    #[serde(default)]
    pub alternate_keys: Vec<VerificationKey>,
    #[serde(default)]
    pub required_claims: Vec<RequiredClaim>,
    /// A claim whose value must be the requested key id (binds a token to one content key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id_claim: Option<String>,
    /// Tolerance for exp and nbf, seconds (default 60, at most 300).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// The claim whose value must be the id of the asset whose key is asked for (default `asset`).
    #[serde(default = "default_asset_claim")]
    pub asset_claim: String,
    /// Tokens open one asset (`asset_claim`) unless this is `false`: then one token opens every asset whose key
    /// this policy guards.
    #[serde(default = "default_true")]
    pub bind_to_asset: bool,
    /// The longest life a token may have, `exp` − `nbf` (and `exp` − `iat` where present), seconds (default one
    /// day, 60 to 2,592,000).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
}

fn default_skew() -> u64 {
    60
}

fn default_asset_claim() -> String {
    "asset".into()
}

fn default_true() -> bool {
    true
}

fn default_max_lifetime() -> u64 {
    DEFAULT_MAX_TOKEN_LIFETIME_SECS
}

/// A token restriction's default `max_lifetime_secs`: one day.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;
/// The largest `max_lifetime_secs` a policy may set: 30 days.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 30 * 86_400;

/// One way to be granted a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "restriction", rename_all = "lowercase")]
pub enum KeyPolicyOption {
    Open,
    Token(Box<TokenRestriction>),
}

/// A named key authorization policy: a key is released if any option allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub options: Vec<KeyPolicyOption>,
}

/// Streaming protocols a delivery policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Hls,
    Dash,
    Progressive,
}

/// How a protocol's output is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    Clear,
    /// HLS whole-segment AES-128 (envelope).
    Aes128,
    /// Common Encryption, AES-CTR.
    Cenc,
    /// Common Encryption, AES-CBC 1:9 pattern (FairPlay-style HLS SAMPLE-AES signalling, DASH).
    Cbcs,
}

/// A DRM system a delivery policy may name (the packager's `vod_package::drm` registry signals each), with the
/// rules a policy naming it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrmId {
    /// W3C Clear Key: licences served by this platform's key service.
    ClearKey,
    /// Licences from the customer's Widevine licence service.
    Widevine,
    /// Licences from the customer's PlayReady licence service.
    PlayReady,
    /// Licences from the customer's FairPlay key server (cbcs, HLS).
    FairPlay,
}

impl DrmId {
    /// Whether a policy naming it gives the URL of the customer's licence service.
    pub fn needs_license_url(self) -> bool {
        self != DrmId::ClearKey
    }
    /// Whether it decrypts content protected with `protection`.
    pub fn decrypts(self, protection: Protection) -> bool {
        match self {
            DrmId::FairPlay => protection == Protection::Cbcs,
            _ => matches!(protection, Protection::Cenc | Protection::Cbcs),
        }
    }
}

/// A DRM system signalled for CENC output, and the licence service of an external one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drm {
    pub system: DrmId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_url: Option<String>,
}

impl Drm {
    pub fn clear_key() -> Self {
        Drm {
            system: DrmId::ClearKey,
            license_url: None,
        }
    }
}

/// Per asset: protocols × protection (AMS: a streaming policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    pub protocols: Vec<Protocol>,
    pub protection: Protection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drm: Vec<Drm>,
    /// The key policy of the asset's content key (protected policies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_policy: Option<String>,
}

/// What a protocol gets for an asset, after AMS's rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery<'a> {
    Clear,
    Protected(&'a DeliveryPolicy),
    /// No policy names the protocol while others exist.
    Blocked,
}

/// The protection `protocol` gets under `policies`: no policy at all means clear; otherwise the policy that names
/// the protocol, and a protocol that none names is blocked.
pub fn delivery_for(policies: &[DeliveryPolicy], protocol: Protocol) -> Delivery<'_> {
    if policies.is_empty() {
        return Delivery::Clear;
    }
    match policies.iter().find(|p| p.protocols.contains(&protocol)) {
        None => Delivery::Blocked,
        Some(p) if p.protection == Protection::Clear => Delivery::Clear,
        Some(p) => Delivery::Protected(p),
    }
}

/// How the key service hands out a content key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRelease {
    /// The raw 16 bytes (`GET /keys/{kid}`): what HLS AES-128 players fetch.
    RawKey,
    /// A W3C Clear Key licence (`POST /keys/clearkey`).
    ClearKeyLicence,
}

/// Whether an asset's delivery policies let the key service release its content key `how`: the raw key only where
/// a policy streams HLS AES-128, a Clear Key licence only where a policy lists Clear Key. Assets protected only for
/// Widevine, PlayReady or FairPlay get their licences from those services, never a key from this one.
pub fn release_allowed(policies: &[DeliveryPolicy], how: KeyRelease) -> Result<(), String> {
    let allowed = policies.iter().any(|p| match how {
        KeyRelease::RawKey => p.protection == Protection::Aes128,
        KeyRelease::ClearKeyLicence => {
            matches!(p.protection, Protection::Cenc | Protection::Cbcs)
                && p.drm.iter().any(|d| d.system == DrmId::ClearKey)
        }
    });
    if allowed {
        return Ok(());
    }
    Err(match how {
        KeyRelease::RawKey => "the asset's delivery policies do not use HLS AES-128: its key is not released raw",
        KeyRelease::ClearKeyLicence => "the asset's delivery policies do not list Clear Key: no Clear Key licence",
    }
    .into())
}

/// Checks a set of delivery policies against AMS's rules; returns the key policy protected ones share.
pub fn validate_policies(policies: &[DeliveryPolicy]) -> Result<Option<String>, String> {
    let mut seen = Vec::new();
    let mut key_policy: Option<&str> = None;
    if policies.len() > 8 {
        return Err("at most 8 delivery policies".into());
    }
    for p in policies {
        if p.protocols.is_empty() {
            return Err("a delivery policy names at least one protocol".into());
        }
        for proto in &p.protocols {
            if seen.contains(proto) {
                return Err(format!(
                    "{proto:?} is named by two delivery policies; one policy per protocol"
                ));
            }
            seen.push(*proto);
            let ok = match (proto, p.protection) {
                (_, Protection::Clear) => true,
                (Protocol::Progressive, _) => false,
                (Protocol::Hls, _) => true,
                (Protocol::Dash, Protection::Aes128) => false,
                (Protocol::Dash, _) => true,
            };
            if !ok {
                return Err(match proto {
                    Protocol::Progressive => "progressive download is never dynamically encrypted".into(),
                    _ => "AES-128 envelope encryption is for HLS only".into(),
                });
            }
        }
        match p.protection {
            Protection::Clear => {
                if !p.drm.is_empty() || p.key_policy.is_some() {
                    return Err("a clear policy has no DRM systems and no key policy".into());
                }
            }
            Protection::Aes128 | Protection::Cenc | Protection::Cbcs => {
                let kp = p
                    .key_policy
                    .as_deref()
                    .ok_or("a protected delivery policy names its key_policy")?;
                if key_policy.is_some_and(|k| k != kp) {
                    return Err("the protected policies of an asset share one key policy (one content key)".into());
                }
                key_policy = Some(kp);
                if p.protection == Protection::Aes128 && !p.drm.is_empty() {
                    return Err("AES-128 envelope encryption takes no DRM systems".into());
                }
                if p.protection != Protection::Aes128 && p.drm.is_empty() {
                    return Err("CENC needs at least one DRM system (clearkey, widevine, playready, fairplay)".into());
                }
                for d in &p.drm {
                    let name = serde_json::to_string(&d.system).unwrap_or_default();
                    match (&d.license_url, d.system.needs_license_url()) {
                        (Some(u), true) if u.starts_with("https://") || u.starts_with("http://") => {}
                        (Some(_), true) => return Err("licence URLs must be http(s) URLs".into()),
                        (None, true) => return Err(format!("{name} needs the license_url of its licence service")),
                        (Some(_), false) => {
                            return Err(format!(
                                "{name} licences come from this platform's key service: no license_url"
                            ))
                        }
                        (None, false) => {}
                    }
                    if !d.system.decrypts(p.protection) {
                        return Err(format!("{name} does not decrypt {:?} content", p.protection).to_lowercase());
                    }
                    if d.system == DrmId::FairPlay && p.protocols.iter().any(|pr| *pr != Protocol::Hls) {
                        return Err("fairplay is signalled in HLS only".into());
                    }
                }
            }
        }
    }
    Ok(key_policy.map(str::to_string))
}

/// Why a token does not grant a key: `Unauthorized` → 401, `Forbidden` → 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
}

fn algorithms_for(key: &VerificationKey) -> &'static [Algorithm] {
    match key {
        VerificationKey::Symmetric { .. } => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        VerificationKey::Rsa { .. } => &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256],
        VerificationKey::Ecdsa { .. } => &[Algorithm::ES256, Algorithm::ES384],
    }
}

/// A verification key ready for use (symmetric secrets already unwrapped).
pub enum ReadyKey {
    Symmetric(Zeroizing<Vec<u8>>),
    Rsa(String),
    Ecdsa(String),
}

impl ReadyKey {
    fn decoding_key(&self) -> Result<DecodingKey, String> {
        match self {
            ReadyKey::Symmetric(k) => Ok(DecodingKey::from_secret(k)),
            ReadyKey::Rsa(pem) => DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string()),
            ReadyKey::Ecdsa(pem) => DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string()),
        }
    }
    fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            ReadyKey::Symmetric(_) => algorithms_for(&VerificationKey::Symmetric {
                key: None,
                wrapped: None,
            }),
            ReadyKey::Rsa(_) => algorithms_for(&VerificationKey::Rsa { pem: String::new() }),
            ReadyKey::Ecdsa(_) => algorithms_for(&VerificationKey::Ecdsa { pem: String::new() }),
        }
    }
}

/// What a token must open: one content key of one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub kid: KeyId,
    pub asset: AssetId,
}

type Claims = HashMap<String, serde_json::Value>;

fn claim_secs(claims: &Claims, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Checks what a token says without its signature, so that junk never costs a key-service call: its form, an
/// algorithm one of the restriction's keys accepts, issuer, audience, `exp` and `nbf` (required, within the clock
/// skew), its life against `max_lifetime_secs`, the required claims and the key and asset bindings. Returns the
/// claims; `verify_token` then checks the signature over exactly these bytes.
pub fn precheck_token(
    token: &str,
    restriction: &TokenRestriction,
    subject: TokenSubject,
    now: i64,
) -> Result<Claims, TokenError> {
    let unauthorized = |m: &str| TokenError::Unauthorized(m.to_string());
    if token.len() > 8192 {
        return Err(unauthorized("token too long"));
    }
    let header = decode_header(token).map_err(|_| unauthorized("malformed token"))?;
    let accepts = std::iter::once(&restriction.primary_key)
        .chain(restriction.alternate_keys.iter())
        .any(|k| algorithms_for(k).contains(&header.alg));
    if !accepts {
        return Err(unauthorized("no verification key accepts the token's algorithm"));
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(unauthorized("malformed token"));
    };
    let claims: Claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unauthorized("malformed token"))?;
    let skew = restriction.clock_skew_secs.min(300) as i64;
    let exp = claim_secs(&claims, "exp").ok_or_else(|| unauthorized("token lacks exp"))?;
    let nbf = claim_secs(&claims, "nbf").ok_or_else(|| unauthorized("token lacks nbf"))?;
    if exp.saturating_add(skew) < now {
        return Err(unauthorized("token expired"));
    }
    if nbf.saturating_sub(skew) > now {
        return Err(unauthorized("token not yet valid"));
    }
    let longest = restriction.max_lifetime_secs.min(MAX_TOKEN_LIFETIME_SECS) as i64;
    let born = claim_secs(&claims, "iat").map_or(nbf, |iat| iat.min(nbf));
    if exp.saturating_sub(born) > longest {
        return Err(unauthorized(&format!(
            "token lives longer than the key policy allows ({longest} s)"
        )));
    }
    if claims.get("iss").and_then(|v| v.as_str()) != Some(restriction.issuer.as_str()) {
        return Err(unauthorized("wrong issuer"));
    }
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => *a == restriction.audience,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(restriction.audience.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(unauthorized("wrong audience"));
    }
    for rc in &restriction.required_claims {
        let Some(v) = claims.get(&rc.claim) else {
            return Err(TokenError::Forbidden(format!(
                "token lacks the required claim {}",
                rc.claim
            )));
        };
        if let Some(want) = &rc.value {
            let got = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            if &got != want {
                return Err(TokenError::Forbidden(format!("claim {} has another value", rc.claim)));
            }
        }
    }
    if let Some(c) = &restriction.key_id_claim {
        let bound = claims.get(c).and_then(|v| v.as_str()).and_then(KeyId::parse);
        if bound != Some(subject.kid) {
            return Err(TokenError::Forbidden("the token is not for this key".into()));
        }
    }
    if restriction.bind_to_asset {
        let bound = claims
            .get(&restriction.asset_claim)
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        if bound != Some(subject.asset.0) {
            return Err(TokenError::Forbidden(format!(
                "the token is not for this asset (claim {})",
                restriction.asset_claim
            )));
        }
    }
    Ok(claims)
}

/// Verifies `token` against a token restriction for `subject`: everything `precheck_token` checks, then the
/// signature with the primary or an alternate key (the algorithm must belong to that key's family: no `none`, no
/// HMAC keyed with a public key).
pub fn verify_token(
    token: &str,
    restriction: &TokenRestriction,
    keys: &[ReadyKey],
    subject: TokenSubject,
) -> Result<(), TokenError> {
    precheck_token(token, restriction, subject, Utc::now().timestamp())?;
    verify_signature(token, restriction, keys)
}

fn verify_signature(token: &str, restriction: &TokenRestriction, keys: &[ReadyKey]) -> Result<(), TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Unauthorized("malformed token".into()))?;
    let mut last = "no verification key accepts the token's algorithm".to_string();
    for key in keys {
        if !key.algorithms().contains(&header.alg) {
            continue;
        }
        let Ok(dk) = key.decoding_key() else {
            last = "a verification key is unusable".into();
            continue;
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = restriction.clock_skew_secs.min(300);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        v.set_issuer(&[&restriction.issuer]);
        v.set_audience(&[&restriction.audience]);
        match decode::<Claims>(token, &dk, &v) {
            Ok(_) => return Ok(()),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                last = match e.kind() {
                    K::InvalidSignature => "invalid signature".into(),
                    K::ExpiredSignature => "token expired".into(),
                    K::ImmatureSignature => "token not yet valid".into(),
                    K::InvalidIssuer => "wrong issuer".into(),
                    K::InvalidAudience => "wrong audience".into(),
                    K::MissingRequiredClaim(c) => format!("token lacks {c}"),
                    K::InvalidAlgorithm => "algorithm not allowed".into(),
                    _ => "invalid token".into(),
                };
                // A signature error means: try the next (alternate) key; anything else is final.
                if !matches!(e.kind(), K::InvalidSignature) {
                    return Err(TokenError::Unauthorized(last));
                }
            }
        }
    }
    Err(TokenError::Unauthorized(last))
}

/// Persistence of content keys and key policies.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn put_content_key(&self, key: &ContentKey) -> Result<(), StoreError>;
    async fn get_content_key(&self, kid: KeyId) -> Result<Option<ContentKey>, StoreError>;
    async fn list_content_keys(&self, asset: AssetId) -> Result<Vec<ContentKey>, StoreError>;
    async fn delete_content_key(&self, kid: KeyId) -> Result<(), StoreError>;
    async fn put_key_policy(&self, policy: &KeyPolicy) -> Result<(), StoreError>;
    async fn get_key_policy(&self, name: &str) -> Result<Option<KeyPolicy>, StoreError>;
    async fn list_key_policies(&self) -> Result<Vec<KeyPolicy>, StoreError>;
    async fn delete_key_policy(&self, name: &str) -> Result<(), StoreError>;
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn key_context(asset: AssetId, kid: KeyId) -> Vec<(&'static str, String)> {
    vec![("asset", asset.to_string()), ("kid", kid.to_string())]
}

fn policy_context(name: &str) -> Vec<(&'static str, String)> {
    vec![("key_policy", name.to_string())]
}

/// A key policy as the API shows it: symmetric secrets are neither returned in plaintext nor wrapped.
pub fn redact(mut p: KeyPolicy) -> KeyPolicy {
    let hide = |k: &mut VerificationKey| {
        if let VerificationKey::Symmetric { key, wrapped } = k {
            *key = None;
            *wrapped = None;
        }
    };
    for o in &mut p.options {
        if let KeyPolicyOption::Token(t) = o {
            hide(&mut t.primary_key);
            t.alternate_keys.iter_mut().for_each(hide);
        }
    }
    p
}

/// Unwrapped symmetric verification keys of this instance, by their ciphertext (a changed secret is a new entry).
type VerifierCache = Arc<std::sync::Mutex<HashMap<String, Zeroizing<Vec<u8>>>>>;

/// Most verification secrets one warm instance keeps unwrapped.
const VERIFIER_CACHE: usize = 256;

/// Content keys, key policies and delivery policies.
#[derive(Clone)]
pub struct ProtectionService {
    assets: Arc<dyn AssetStore>,
    keys: Arc<dyn KeyStore>,
    kms: Arc<dyn KeyService>,
    verifiers: VerifierCache,
}

impl ProtectionService {
    pub fn new(assets: Arc<dyn AssetStore>, keys: Arc<dyn KeyStore>, kms: Arc<dyn KeyService>) -> Self {
        ProtectionService {
            assets,
            keys,
            kms,
            verifiers: VerifierCache::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// Validates and stores a key policy; symmetric secrets are wrapped by the key service before storing.
    pub async fn put_key_policy(&self, mut policy: KeyPolicy) -> Result<KeyPolicy, DomainError> {
        if !crate::delivery::valid_filter_name(&policy.name) {
            return Err(DomainError::invalid(
                "key policy name must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if policy.options.is_empty() || policy.options.len() > 4 {
            return Err(DomainError::invalid("a key policy has 1 to 4 options"));
        }
        let ctx = policy_context(&policy.name);
        for o in &mut policy.options {
            let KeyPolicyOption::Token(t) = o else { continue };
            if t.issuer.is_empty() || t.audience.is_empty() {
                return Err(DomainError::invalid(
                    "a token restriction names its issuer and audience",
                ));
            }
            if t.clock_skew_secs > 300 {
                return Err(DomainError::invalid("clock_skew_secs is at most 300"));
            }
            if t.alternate_keys.len() > 4 {
                return Err(DomainError::invalid("at most 4 alternate keys"));
            }
            if !(60..=MAX_TOKEN_LIFETIME_SECS).contains(&t.max_lifetime_secs) {
                return Err(DomainError::invalid(format!(
                    "max_lifetime_secs is 60 to {MAX_TOKEN_LIFETIME_SECS}"
                )));
            }
            if t.asset_claim.is_empty() || t.asset_claim.len() > 64 {
                return Err(DomainError::invalid("asset_claim names a claim (1 to 64 characters)"));
            }
            for k in std::iter::once(&mut t.primary_key).chain(t.alternate_keys.iter_mut()) {
                match k {
                    VerificationKey::Symmetric { key, wrapped } => {
                        let secret = Zeroizing::new(
                            b64()
                                .decode(key.as_deref().ok_or_else(|| {
                                    DomainError::invalid("a symmetric verification key gives `key` (base64)")
                                })?)
                                .map_err(|_| DomainError::invalid("symmetric key is not base64"))?,
                        );
                        if secret.len() < 32 {
                            return Err(DomainError::invalid("symmetric keys have at least 256 bits"));
                        }
                        let w = self.kms.wrap(&secret, &ctx).await?;
                        *key = None;
                        *wrapped = Some(b64().encode(w));
                    }
                    VerificationKey::Rsa { pem } => {
                        DecodingKey::from_rsa_pem(pem.as_bytes())
                            .map_err(|e| DomainError::invalid(format!("RSA key: {e}")))?;
                    }
                    VerificationKey::Ecdsa { pem } => {
                        DecodingKey::from_ec_pem(pem.as_bytes())
                            .map_err(|e| DomainError::invalid(format!("EC key: {e}")))?;
                    }
                }
            }
        }
        self.keys.put_key_policy(&policy).await?;
        Ok(redact(policy))
    }

    pub async fn get_key_policy(&self, name: &str) -> Result<KeyPolicy, DomainError> {
        self.keys
            .get_key_policy(name)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                kind: "key policy",
                id: name.to_string(),
            })
    }

    /// Sets an asset's delivery policies (AMS's rules checked) and makes sure it has a content key when any
    /// policy is protected. Returns the asset's content keys.
    pub async fn set_delivery_policies(
        &self,
        asset_id: AssetId,
        policies: Vec<DeliveryPolicy>,
    ) -> Result<Vec<ContentKeyView>, DomainError> {
        let key_policy = validate_policies(&policies).map_err(DomainError::Invalid)?;
        if let Some(kp) = &key_policy {
            self.get_key_policy(kp).await?;
        }
        loop {
            let mut asset = self
                .assets
                .get(asset_id)
                .await?
                .ok_or_else(|| DomainError::asset_not_found(asset_id.to_string()))?;
            if asset.state == AssetState::Error {
                return Err(DomainError::Conflict(format!("asset {asset_id} is in Error")));
            }
            asset.delivery_policies = policies.clone();
            asset.updated_at = Utc::now();
            match self.assets.update(&asset).await {
                Ok(_) => break,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let mut keys = self.keys.list_content_keys(asset_id).await?;
        if let Some(kp) = key_policy {
            if keys.iter().all(|k| k.retired_at.is_some()) {
                keys.push(self.create_content_key(asset_id, &kp).await?);
            } else {
                for k in keys.iter_mut().filter(|k| k.key_policy != kp) {
                    k.key_policy = kp.clone();
                    self.keys.put_content_key(k).await?;
                }
            }
        }
        Ok(keys.iter().map(ContentKeyView::from).collect())
    }

    /// Creates a content key: 16 random bytes from the key service, stored only wrapped.
    pub async fn create_content_key(&self, asset: AssetId, key_policy: &str) -> Result<ContentKey, DomainError> {
        self.get_key_policy(key_policy).await?;
        let kid = KeyId::new_random();
        let (_plain, wrapped) = self.kms.generate(16, &key_context(asset, kid)).await?;
        let key = ContentKey {
            kid,
            asset_id: asset,
            wrapped: b64().encode(wrapped),
            key_policy: key_policy.to_string(),
            created_at: Utc::now(),
            retired_at: None,
        };
        self.keys.put_content_key(&key).await?;
        Ok(key)
    }

    /// The plaintext of a content key (for the packager and the key service only).
    pub async fn unwrap_content_key(&self, key: &ContentKey) -> Result<Zeroizing<[u8; 16]>, DomainError> {
        let wrapped = b64()
            .decode(&key.wrapped)
            .map_err(|_| DomainError::Store(StoreError::Corrupt("content key is not base64".into())))?;
        let plain = self.kms.unwrap(&wrapped, &key_context(key.asset_id, key.kid)).await?;
        let arr: [u8; 16] = plain
            .as_slice()
            .try_into()
            .map_err(|_| DomainError::Store(StoreError::Corrupt("content key is not 16 bytes".into())))?;
        Ok(Zeroizing::new(arr))
    }

    /// Retires a content key: it is never released or used to encrypt again. When its asset is still delivered
    /// protected and no active key remains, a new one (same key policy) takes its place and is returned.
    pub async fn retire_content_key(&self, kid: KeyId) -> Result<(ContentKey, Option<ContentKey>), DomainError> {
        let mut key = self
            .keys
            .get_content_key(kid)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                kind: "content key",
                id: kid.to_string(),
            })?;
        if key.retired_at.is_none() {
            key.retired_at = Some(Utc::now());
            self.keys.put_content_key(&key).await?;
        }
        let asset = self.assets.get(key.asset_id).await?;
        let protected = asset.is_some_and(|a| validate_policies(&a.delivery_policies).ok().flatten().is_some());
        let active = self.keys.list_content_keys(key.asset_id).await?;
        let replacement = if protected && active.iter().all(|k| k.retired_at.is_some()) {
            Some(self.create_content_key(key.asset_id, &key.key_policy).await?)
        } else {
            None
        };
        Ok((key, replacement))
    }

    /// The verification keys of a token restriction, secrets unwrapped once per warm instance.
    pub async fn ready_keys(&self, policy: &str, t: &TokenRestriction) -> Result<Vec<ReadyKey>, DomainError> {
        let mut out = Vec::new();
        for k in std::iter::once(&t.primary_key).chain(t.alternate_keys.iter()) {
            out.push(match k {
                VerificationKey::Symmetric { wrapped, .. } => {
                    let wrapped = wrapped.as_deref().unwrap_or_default();
                    let cache_key = format!("{policy}\n{wrapped}");
                    let cached = self.verifiers.lock().ok().and_then(|c| c.get(&cache_key).cloned());
                    let secret = match cached {
                        Some(s) => s,
                        None => {
                            let w = b64().decode(wrapped).map_err(|_| {
                                DomainError::Store(StoreError::Corrupt("wrapped key is not base64".into()))
                            })?;
                            let s = self.kms.unwrap(&w, &policy_context(policy)).await?;
                            if let Ok(mut c) = self.verifiers.lock() {
                                if c.len() >= VERIFIER_CACHE {
                                    c.clear();
                                }
                                c.insert(cache_key, s.clone());
                            }
                            s
                        }
                    };
                    ReadyKey::Symmetric(secret)
                }
                VerificationKey::Rsa { pem } => ReadyKey::Rsa(pem.clone()),
                VerificationKey::Ecdsa { pem } => ReadyKey::Ecdsa(pem.clone()),
            });
        }
        Ok(out)
    }

    /// Decides whether `token` may receive key `key`, released `how`: the key is not retired, its asset's delivery
    /// policies use that kind of release, and an option of the key's policy allows the token. A token is read
    /// (`precheck_token`) before any verification key is unwrapped.
    pub async fn authorize(
        &self,
        key: &ContentKey,
        token: Option<&str>,
        how: KeyRelease,
    ) -> Result<(), AuthorizeError> {
        if key.retired_at.is_some() {
            return Err(AuthorizeError::Token(TokenError::Forbidden(format!(
                "content key {} is retired",
                key.kid
            ))));
        }
        let asset = self
            .assets
            .get(key.asset_id)
            .await
            .map_err(|e| AuthorizeError::Domain(e.into()))?
            .ok_or_else(|| AuthorizeError::Token(TokenError::Forbidden("the key's asset no longer exists".into())))?;
        release_allowed(&asset.delivery_policies, how).map_err(|m| AuthorizeError::Token(TokenError::Forbidden(m)))?;
        let policy = self
            .get_key_policy(&key.key_policy)
            .await
            .map_err(AuthorizeError::Domain)?;
        let subject = TokenSubject {
            kid: key.kid,
            asset: key.asset_id,
        };
        let mut last = TokenError::Unauthorized("a token is required".into());
        for o in &policy.options {
            match o {
                KeyPolicyOption::Open => return Ok(()),
                KeyPolicyOption::Token(t) => {
                    let Some(token) = token else { continue };
                    if let Err(e) = precheck_token(token, t, subject, Utc::now().timestamp()) {
                        last = e;
                        continue;
                    }
                    let keys = self.ready_keys(&policy.name, t).await.map_err(AuthorizeError::Domain)?;
                    match verify_signature(token, t, &keys) {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e,
                    }
                }
            }
        }
        Err(AuthorizeError::Token(last))
    }
}

/// Failure to authorize a key request.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    #[error(transparent)]
    Token(TokenError),
    #[error(transparent)]
    Domain(DomainError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn content_keys_with_the_in_memory_fakes() {
        use crate::memory::{MemoryAssetStore, MemoryKeyService, MemoryKeyStore};
        let service = ProtectionService::new(
            Arc::new(MemoryAssetStore::default()),
            Arc::new(MemoryKeyStore::default()),
            Arc::new(MemoryKeyService::default()),
        );
        let policy: KeyPolicy = serde_json::from_value(json!({
            "name": "open", "options": [{"restriction": "open"}]
        }))
        .unwrap();
        service.put_key_policy(policy).await.unwrap();
        let asset = AssetId::new_random();
        let key = service.create_content_key(asset, "open").await.unwrap();
        assert!(!key.wrapped.is_empty());
        let plain = service.unwrap_content_key(&key).await.unwrap();
        assert_eq!(
            *plain,
            *service.unwrap_content_key(&key).await.unwrap(),
            "unwraps to the same key"
        );
        // The wrapped key is bound to its asset and key id: moved to another asset it does not unwrap.
        let mut moved = key.clone();
        moved.asset_id = AssetId::new_random();
        assert!(service.unwrap_content_key(&moved).await.is_err());
        assert!(
            service.create_content_key(asset, "missing").await.is_err(),
            "an unknown key policy"
        );
        assert_eq!(service.store().list_content_keys(asset).await.unwrap().len(), 1);
    }
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn restriction() -> TokenRestriction {
        TokenRestriction {
            issuer: "https://issuer.example".into(),
            audience: "vod".into(),
            primary_key: VerificationKey::Symmetric {
                key: None,
                wrapped: None,
            },
            alternate_keys: vec![],
            required_claims: vec![
                RequiredClaim {
                    claim: "entitled".into(),
                    value: Some("yes".into()),
                },
                RequiredClaim {
                    claim: "sub".into(),
                    value: None,
                },
            ],
            key_id_claim: Some("kid".into()),
            clock_skew_secs: 30,
            asset_claim: "asset".into(),
            bind_to_asset: true,
            max_lifetime_secs: 3600,
        }
    }

    fn token(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    const ASSET: AssetId = AssetId(Uuid::from_u128(0x5eed));

    fn good(kid: KeyId) -> serde_json::Value {
        let now = Utc::now().timestamp();
        json!({"iss": "https://issuer.example", "aud": "vod", "exp": now + 600, "nbf": now - 10,
               "entitled": "yes", "sub": "viewer", "kid": kid.to_string(), "asset": ASSET.to_string()})
    }

    #[test]
    fn verifies_tokens_like_ams() {
        let kid = KeyId::new_random();
        let subj = TokenSubject { kid, asset: ASSET };
        let keys = [ReadyKey::Symmetric(Zeroizing::new(SECRET.to_vec()))];
        let r = restriction();
        assert_eq!(
            verify_token(&token(good(kid), Algorithm::HS256, SECRET), &r, &keys, subj),
            Ok(())
        );
        assert_eq!(
            verify_token(&token(good(kid), Algorithm::HS512, SECRET), &r, &keys, subj),
            Ok(())
        );
        let unauthorized = |c: serde_json::Value, secret: &[u8]| {
            matches!(
                verify_token(&token(c, Algorithm::HS256, secret), &r, &keys, subj),
                Err(TokenError::Unauthorized(_))
            )
        };
        let now = Utc::now().timestamp();
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good(kid);
            c[k] = v;
            c
        };
        assert!(unauthorized(good(kid), b"another-secret-another-secret-00"));
        assert!(unauthorized(with("exp", json!(now - 100)), SECRET));
        assert!(unauthorized(with("nbf", json!(now + 100)), SECRET));
        assert!(unauthorized(with("iss", json!("https://evil")), SECRET));
        assert!(unauthorized(with("aud", json!("other")), SECRET));
        let mut no_exp = good(kid);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(unauthorized(no_exp, SECRET));
        // Within the skew is fine.
        assert_eq!(
            verify_token(
                &token(with("exp", json!(now - 5)), Algorithm::HS256, SECRET),
                &r,
                &keys,
                subj
            ),
            Ok(())
        );
        let forbidden = |c: serde_json::Value| {
            matches!(
                verify_token(&token(c, Algorithm::HS256, SECRET), &r, &keys, subj),
                Err(TokenError::Forbidden(_))
            )
        };
        assert!(forbidden(with("entitled", json!("no"))));
        let mut no_sub = good(kid);
        no_sub.as_object_mut().unwrap().remove("sub");
        assert!(forbidden(no_sub));
        assert!(forbidden(with("kid", json!(KeyId::new_random().to_string()))));
        // alg none and garbage.
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good(kid).to_string());
        assert!(matches!(
            verify_token(&format!("{none_header}.{body}."), &r, &keys, subj),
            Err(TokenError::Unauthorized(_))
        ));
        assert!(matches!(
            verify_token("not.a.jwt", &r, &keys, subj),
            Err(TokenError::Unauthorized(_))
        ));
        assert!(matches!(
            verify_token("", &r, &keys, subj),
            Err(TokenError::Unauthorized(_))
        ));
        // Rotation: an alternate key verifies.
        let rotated = [
            ReadyKey::Symmetric(Zeroizing::new(b"old-secret-old-secret-old-secret".to_vec())),
            ReadyKey::Symmetric(Zeroizing::new(SECRET.to_vec())),
        ];
        assert_eq!(
            verify_token(&token(good(kid), Algorithm::HS256, SECRET), &r, &rotated, subj),
            Ok(())
        );
    }

    #[test]
    fn tokens_are_bound_to_their_asset_and_live_no_longer_than_allowed() {
        let kid = KeyId::new_random();
        let keys = [ReadyKey::Symmetric(Zeroizing::new(SECRET.to_vec()))];
        let mut r = restriction();
        let other = TokenSubject {
            kid,
            asset: AssetId::new_random(),
        };
        let subj = TokenSubject { kid, asset: ASSET };
        let t = token(good(kid), Algorithm::HS256, SECRET);
        assert!(
            matches!(verify_token(&t, &r, &keys, other), Err(TokenError::Forbidden(m)) if m.contains("asset")),
            "a token for one asset does not open another"
        );
        let mut unbound = good(kid);
        unbound.as_object_mut().expect("claims are an object").remove("asset");
        let unbound = token(unbound, Algorithm::HS256, SECRET);
        assert!(matches!(
            verify_token(&unbound, &r, &keys, subj),
            Err(TokenError::Forbidden(_))
        ));
        // Opted out: one token opens every asset of the policy.
        r.bind_to_asset = false;
        assert_eq!(verify_token(&unbound, &r, &keys, other), Ok(()));
        assert_eq!(verify_token(&t, &r, &keys, other), Ok(()));
        // Lifetime: exp − nbf, or exp − iat where iat is earlier, within max_lifetime_secs (3600 here).
        let now = Utc::now().timestamp();
        let life = |nbf: i64, exp: i64, iat: Option<i64>| {
            let mut c = good(kid);
            c["nbf"] = json!(nbf);
            c["exp"] = json!(exp);
            if let Some(i) = iat {
                c["iat"] = json!(i);
            }
            verify_token(&token(c, Algorithm::HS256, SECRET), &r, &keys, subj)
        };
        assert_eq!(life(now - 10, now + 3000, None), Ok(()));
        assert!(matches!(life(now - 10, now + 4000, None), Err(TokenError::Unauthorized(m)) if m.contains("longer")));
        assert!(matches!(
            life(now - 10, now + 86_400 * 365, None),
            Err(TokenError::Unauthorized(_))
        ));
        assert!(matches!(
            life(now - 10, now + 3000, Some(now - 2000)),
            Err(TokenError::Unauthorized(_))
        ));
        let stored: TokenRestriction = serde_json::from_value(json!({"issuer": "i", "audience": "a",
            "primary_key": {"type": "rsa", "pem": "x"}}))
        .expect("valid test JSON");
        assert!(stored.bind_to_asset, "tokens are bound to the asset by default");
        assert_eq!(stored.asset_claim, "asset");
        assert_eq!(stored.max_lifetime_secs, DEFAULT_MAX_TOKEN_LIFETIME_SECS);
    }

    #[test]
    fn keys_leave_only_as_the_delivery_policies_say() {
        let p = |v: serde_json::Value| -> Vec<DeliveryPolicy> {
            serde_json::from_value(v).expect("a valid delivery policy")
        };
        let aes = p(json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "k"}]));
        let widevine = p(
            json!([{"protocols": ["dash", "hls"], "protection": "cenc", "key_policy": "k",
            "drm": [{"system": "widevine", "license_url": "https://wv.example/l"},
                    {"system": "playready", "license_url": "https://pr.example/l"}]}]),
        );
        let fairplay = p(json!([{"protocols": ["hls"], "protection": "cbcs", "key_policy": "k",
            "drm": [{"system": "fairplay", "license_url": "https://fps.example/l"}]}]));
        let clearkey = p(json!([{"protocols": ["dash"], "protection": "cenc", "key_policy": "k",
            "drm": [{"system": "clearkey"}]}]));
        let both = p(
            json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "k"},
            {"protocols": ["dash"], "protection": "cbcs", "key_policy": "k", "drm": [{"system": "clearkey"}]}]),
        );
        for (name, policies, raw, licence) in [
            ("aes128", &aes, true, false),
            ("widevine+playready", &widevine, false, false),
            ("fairplay", &fairplay, false, false),
            ("clearkey", &clearkey, false, true),
            ("both", &both, true, true),
            ("none", &Vec::new(), false, false),
        ] {
            assert_eq!(release_allowed(policies, KeyRelease::RawKey).is_ok(), raw, "{name} raw");
            assert_eq!(
                release_allowed(policies, KeyRelease::ClearKeyLicence).is_ok(),
                licence,
                "{name} licence"
            );
        }
    }

    /// Counts the key service's unwraps.
    #[derive(Default)]
    struct CountingKms {
        inner: crate::memory::MemoryKeyService,
        unwraps: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl KeyService for CountingKms {
        async fn generate(
            &self,
            len: usize,
            context: &[(&str, String)],
        ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), StoreError> {
            self.inner.generate(len, context).await
        }
        async fn wrap(&self, plaintext: &[u8], context: &[(&str, String)]) -> Result<Vec<u8>, StoreError> {
            self.inner.wrap(plaintext, context).await
        }
        async fn unwrap(&self, wrapped: &[u8], context: &[(&str, String)]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
            self.unwraps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.unwrap(wrapped, context).await
        }
    }

    #[tokio::test]
    async fn key_release_checks_policy_retirement_and_token_before_the_key_service() {
        use crate::memory::{MemoryAssetStore, MemoryKeyStore};
        use crate::model::Asset;
        let assets = Arc::new(MemoryAssetStore::default());
        let kms = Arc::new(CountingKms::default());
        let service = ProtectionService::new(assets.clone(), Arc::new(MemoryKeyStore::default()), kms.clone());
        let mut r = restriction();
        r.primary_key = VerificationKey::Symmetric {
            key: Some(b64().encode(SECRET)),
            wrapped: None,
        };
        let policy = KeyPolicy {
            name: "viewers".into(),
            description: String::new(),
            options: vec![KeyPolicyOption::Token(Box::new(r))],
        };
        service
            .put_key_policy(policy)
            .await
            .expect("the in-memory stores answer");
        assets
            .insert(&Asset::new(ASSET, "a", AssetState::Ready))
            .await
            .expect("the in-memory stores answer");
        let set = |v: serde_json::Value| {
            let service = service.clone();
            async move {
                service
                    .set_delivery_policies(ASSET, serde_json::from_value(v).expect("a valid delivery policy"))
                    .await
                    .expect("the in-memory stores answer")
            }
        };
        let keys = set(json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "viewers"}])).await;
        let key = service
            .store()
            .get_content_key(keys[0].kid)
            .await
            .expect("the key store answers")
            .expect("the asset's content key");
        let unwraps = || kms.unwraps.load(std::sync::atomic::Ordering::SeqCst);
        let base = unwraps();
        let valid = token(good(key.kid), Algorithm::HS256, SECRET);
        let forbidden =
            |r: Result<(), AuthorizeError>| matches!(r, Err(AuthorizeError::Token(TokenError::Forbidden(_))));
        let unauthorized =
            |r: Result<(), AuthorizeError>| matches!(r, Err(AuthorizeError::Token(TokenError::Unauthorized(_))));
        // Junk costs no key-service call.
        let expired = {
            let mut c = good(key.kid);
            c["exp"] = json!(Utc::now().timestamp() - 1000);
            token(c, Algorithm::HS256, b"not-the-secret-not-the-secret-00")
        };
        for junk in ["", "garbage", "a.b.c", expired.as_str()] {
            assert!(
                unauthorized(service.authorize(&key, Some(junk), KeyRelease::RawKey).await),
                "{junk}"
            );
        }
        assert!(unauthorized(service.authorize(&key, None, KeyRelease::RawKey).await));
        assert_eq!(unwraps(), base, "no unwrap for a token that cannot be valid");
        // The secret is unwrapped once per instance.
        for _ in 0..3 {
            service
                .authorize(&key, Some(&valid), KeyRelease::RawKey)
                .await
                .expect("the policies and the token allow this release");
        }
        assert_eq!(unwraps(), base + 1, "one unwrap for three good requests");
        // HLS AES-128 only: no Clear Key licence.
        assert!(forbidden(
            service.authorize(&key, Some(&valid), KeyRelease::ClearKeyLicence).await
        ));
        // Widevine-only: neither.
        set(
            json!([{"protocols": ["dash"], "protection": "cenc", "key_policy": "viewers",
            "drm": [{"system": "widevine", "license_url": "https://wv.example/l"}]}]),
        )
        .await;
        assert!(forbidden(
            service.authorize(&key, Some(&valid), KeyRelease::RawKey).await
        ));
        assert!(forbidden(
            service.authorize(&key, Some(&valid), KeyRelease::ClearKeyLicence).await
        ));
        // Clear Key listed: the licence, not the raw key.
        set(
            json!([{"protocols": ["dash"], "protection": "cenc", "key_policy": "viewers",
            "drm": [{"system": "clearkey"}]}]),
        )
        .await;
        service
            .authorize(&key, Some(&valid), KeyRelease::ClearKeyLicence)
            .await
            .expect("the policies and the token allow this release");
        assert!(forbidden(
            service.authorize(&key, Some(&valid), KeyRelease::RawKey).await
        ));
        // Retired: never again; a new key takes its place.
        let (retired, replacement) = service
            .retire_content_key(key.kid)
            .await
            .expect("the in-memory stores answer");
        assert!(retired.retired_at.is_some());
        let replacement = replacement.expect("a protected asset gets a new key");
        assert_ne!(replacement.kid, key.kid);
        assert!(forbidden(
            service
                .authorize(&retired, Some(&valid), KeyRelease::ClearKeyLicence)
                .await
        ));
        let fresh = token(good(replacement.kid), Algorithm::HS256, SECRET);
        service
            .authorize(&replacement, Some(&fresh), KeyRelease::ClearKeyLicence)
            .await
            .expect("the policies and the token allow this release");
    }

    #[test]
    fn hmac_signed_with_a_public_key_is_refused() {
        // Key confusion: an attacker signs HS256 with the RSA public key's PEM bytes.
        let kid = KeyId::new_random();
        let subj = TokenSubject { kid, asset: ASSET };
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7Y5TfHeV+0T1Rp3CZKkqYvGWWmtG\n4b+gJrWsoCSNqQZzUt0mWr7aWWl0U8Gc8D+kzYB2XHhOHZpCT8q9QEXHnA==\n-----END PUBLIC KEY-----\n";
        let keys = [ReadyKey::Ecdsa(pem.into())];
        let forged = token(good(kid), Algorithm::HS256, pem.as_bytes());
        assert!(matches!(
            verify_token(&forged, &restriction(), &keys, subj),
            Err(TokenError::Unauthorized(_))
        ));
    }

    #[test]
    fn drm_systems_follow_their_rules() {
        let policy = |protocols: Vec<Protocol>, protection, drm: serde_json::Value| -> Result<_, String> {
            let drm: Vec<Drm> = serde_json::from_value(drm).map_err(|e| e.to_string())?;
            validate_policies(&[DeliveryPolicy {
                protocols,
                protection,
                drm,
                key_policy: Some("k".into()),
            }])
        };
        let hls = || vec![Protocol::Hls];
        // As stored by earlier versions, and as the API takes them.
        assert!(policy(hls(), Protection::Cenc, json!([{"system": "clearkey"}])).is_ok());
        let wv = json!([{"system": "widevine", "license_url": "https://wv.example/lic"}]);
        assert!(policy(vec![Protocol::Dash], Protection::Cenc, wv).is_ok());
        let fp = json!([{"system": "fairplay", "license_url": "https://fps.example/ksm"}]);
        assert!(policy(hls(), Protection::Cbcs, fp.clone()).is_ok());
        // FairPlay: cbcs and HLS only.
        assert!(policy(hls(), Protection::Cenc, fp.clone())
            .unwrap_err()
            .contains("does not decrypt"));
        assert!(policy(vec![Protocol::Dash], Protection::Cbcs, fp)
            .unwrap_err()
            .contains("HLS only"));
        // Licence URLs: required by external services, refused for Clear Key, http(s) only.
        let e = policy(vec![Protocol::Dash], Protection::Cenc, json!([{"system": "playready"}])).unwrap_err();
        assert!(e.contains("needs the license_url"), "{e}");
        let ck = json!([{"system": "clearkey", "license_url": "https://x"}]);
        assert!(policy(hls(), Protection::Cenc, ck).unwrap_err().contains("key service"));
        let ftp = json!([{"system": "widevine", "license_url": "ftp://x"}]);
        assert!(policy(hls(), Protection::Cenc, ftp).unwrap_err().contains("http(s)"));
        assert!(policy(hls(), Protection::Cenc, json!([{"system": "primetime"}])).is_err());
    }

    #[test]
    fn ams_rules_for_delivery_policies() {
        let p = |protocols: Vec<Protocol>, protection, drm: Vec<Drm>, kp: Option<&str>| DeliveryPolicy {
            protocols,
            protection,
            drm,
            key_policy: kp.map(str::to_string),
        };
        let hls_aes = p(vec![Protocol::Hls], Protection::Aes128, vec![], Some("k"));
        let dash_cenc = p(
            vec![Protocol::Dash],
            Protection::Cenc,
            vec![Drm::clear_key()],
            Some("k"),
        );
        let all = vec![hls_aes.clone(), dash_cenc.clone()];
        assert_eq!(validate_policies(&all), Ok(Some("k".into())));
        assert_eq!(delivery_for(&[], Protocol::Progressive), Delivery::Clear);
        assert_eq!(delivery_for(&all, Protocol::Hls), Delivery::Protected(&all[0]));
        assert_eq!(delivery_for(&all, Protocol::Progressive), Delivery::Blocked);
        assert!(validate_policies(&[hls_aes.clone(), hls_aes.clone()]).is_err());
        assert!(validate_policies(&[p(
            vec![Protocol::Progressive],
            Protection::Cenc,
            vec![Drm::clear_key()],
            Some("k")
        )])
        .is_err());
        assert!(validate_policies(&[p(vec![Protocol::Dash], Protection::Aes128, vec![], Some("k"))]).is_err());
        assert!(validate_policies(&[p(vec![Protocol::Dash], Protection::Cenc, vec![], Some("k"))]).is_err());
        assert!(validate_policies(&[p(vec![Protocol::Hls], Protection::Aes128, vec![], None)]).is_err());
        let other = p(
            vec![Protocol::Dash],
            Protection::Cenc,
            vec![Drm::clear_key()],
            Some("other"),
        );
        assert!(validate_policies(&[hls_aes, other]).is_err());
        let clear = p(vec![Protocol::Progressive], Protection::Clear, vec![], None);
        assert_eq!(validate_policies(&[clear]), Ok(None));
    }
}
