//! Content protection end to end: a key policy with a JWT token restriction, delivery policies (HLS AES-128,
//! DASH CENC with Clear Key + Widevine + PlayReady signalling), key delivery through the stream API, and real
//! clients — ffmpeg decodes the AES-128 HLS stream fetching its key with a token and decrypts the CENC output with
//! the key; hls.js plays AES-128, dash.js and shaka-player play CENC with a Clear Key licence from our key service.
//! Every bad token is refused with the right status, and neither DynamoDB nor the logs hold a plaintext key.
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const SECRET: &[u8] = b"e2e-token-secret-of-32-bytes-min";
const OLD_SECRET: &[u8] = b"e2e-rotated-out-secret-32-bytes!";
const ISSUER: &str = "https://issuer.e2e";
const AUDIENCE: &str = "vod-e2e";

/// Captures every log line of this test process (nextest runs each test in its own process).
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn jwt(claims: Value, alg: Algorithm, secret: &[u8]) -> String {
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).expect("jwt")
}

fn claims(kid: &str, asset: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "nbf": now - 5, "sub": "viewer-1",
           "entitled": "yes", "kid": kid, "asset": asset})
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn frames(args: &[&str]) -> Vec<u64> {
    let p = ffprobe(&[&["-count_frames", "-select_streams", "v", "-show_streams"], args].concat());
    p["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_streams_play_only_with_valid_tokens() {
    let logs = LogSink::default();
    let sink = logs.clone();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter("trace")
        .with_writer(move || sink.clone())
        .try_init();

    let stack = stack_with("protect", &[("ManifestTtlSeconds", "1")]).await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    let dir = scratch("protect");
    let source = h264_aac_mp4(&dir, "clip.mp4", "320x240", 25, 5);
    let asset = api.upload(&source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&id).await["state"], "Probed");
    let job = api.start_job(&id, "tiny").await;
    assert_eq!(
        wait_job(&api, job["id"].as_str().expect("job"), 600).await["state"],
        "Finished"
    );

    // A token restriction: HS256 secret with a rotated-out alternate, issuer, audience, required claims (one with a
    // value, one that must merely exist), and the key-id binding.
    let policy = json!({"name": "viewers", "options": [{"restriction": "token", "issuer": ISSUER, "audience": AUDIENCE,
        "primary_key": {"type": "symmetric", "key": b64(SECRET)},
        "alternate_keys": [{"type": "symmetric", "key": b64(OLD_SECRET)}],
        "required_claims": [{"claim": "entitled", "value": "yes"}, {"claim": "sub"}],
        "key_id_claim": "kid", "clock_skew_secs": 30}]});
    let (s, stored) = api.call(Method::POST, "/key-policies", Some(policy)).await;
    assert_eq!(s, 201, "{stored}");
    assert!(
        !stored.to_string().contains(&b64(SECRET)),
        "the secret is never returned: {stored}"
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/key-policies",
            Some(
                json!({"name": "weak", "options": [{"restriction": "token", "issuer": "i", "audience": "a",
                "primary_key": {"type": "symmetric", "key": b64(b"short")}}]}),
            ),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // AMS rules: one policy per protocol, no AES-128 for DASH, progressive never encrypted.
    for bad in [
        json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "viewers"},
               {"protocols": ["hls"], "protection": "clear"}]),
        json!([{"protocols": ["dash"], "protection": "aes128", "key_policy": "viewers"}]),
        json!([{"protocols": ["progressive"], "protection": "cenc", "drm": [{"system": "clearkey"}], "key_policy": "viewers"}]),
        json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "nope"}]),
    ] {
        let (s, v) = api
            .call(
                Method::PUT,
                &format!("/assets/{id}/delivery-policies"),
                Some(json!({"policies": bad})),
            )
            .await;
        assert!(s == 400 || s == 404, "{v}");
    }
    let (s, set) = api
        .call(
            Method::PUT,
            &format!("/assets/{id}/delivery-policies"),
            Some(json!({"policies": [
                {"protocols": ["hls"], "protection": "aes128", "key_policy": "viewers"},
                {"protocols": ["dash"], "protection": "cenc", "key_policy": "viewers", "drm": [
                    {"system": "clearkey"},
                    {"system": "widevine", "license_url": "https://licence.example/widevine"},
                    {"system": "playready", "license_url": "https://licence.example/playready"}]}]})),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    let kid = set["content_keys"][0]["kid"].as_str().expect("kid").to_string();
    let kid_bytes = *uuid::Uuid::parse_str(&kid).expect("uuid").as_bytes();

    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let hls = loc["urls"]["hls"].as_str().expect("hls").to_string();
    let dash = loc["urls"]["dash"].as_str().expect("dash").to_string();
    let licence = loc["urls"]["clearkey_license"].as_str().expect("licence").to_string();
    let origin = licence.trim_end_matches("/keys/clearkey").to_string();
    let ism = loc["urls"]["hls_cmaf"]
        .as_str()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(a, _)| a.to_string())
        .expect("ism");
    let key_url = format!("{origin}/keys/{kid}");

    // Signalling.
    let media = http
        .get(format!("{ism}/audio/media.m3u8"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        media.contains(&format!("#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/{kid}\""))
            && media.contains("aes128/seg-00000.m4s"),
        "{media}"
    );
    let mpd = http.get(&dash).send().await.expect("send").text().await.expect("text");
    for needle in [
        format!("value=\"cenc\" cenc:default_KID=\"{kid}\""),
        "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed".to_string(),
        "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95".to_string(),
        "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e".to_string(),
        "<cenc:pssh>".to_string(),
        "cenc/init.mp4".to_string(),
    ] {
        assert!(mpd.contains(&needle), "MPD lacks {needle}: {mpd}");
    }
    // Clear segments and progressive downloads of a protected asset are refused.
    let r = http
        .get(format!("{ism}/audio/seg-00000.m4s"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{ism}/audio/cbcs/seg-00000.m4s"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let clear = http
        .get(format!("{ism}/audio/init.mp4"))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("b");
    let enc_seg = http
        .get(format!("{ism}/audio/aes128/seg-00001.m4s"))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("b");
    assert!(
        !clear.is_empty() && enc_seg.len() % 16 == 0,
        "AES-128 output is whole blocks"
    );
    assert!(!enc_seg.windows(4).any(|w| w == b"moof"), "the segment is encrypted");

    // Tokens.
    let good = jwt(claims(&kid, &id), Algorithm::HS256, SECRET);
    let key_with = |auth: Option<String>| {
        let mut r = http.get(&key_url);
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send()
    };
    let r = key_with(Some(good.clone())).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let key = r.bytes().await.expect("key").to_vec();
    assert_eq!(key.len(), 16);
    let r = http.get(format!("{key_url}?token={good}")).send().await.expect("send");
    assert_eq!(r.status(), 200, "token in the query");
    let rotated = jwt(claims(&kid, &id), Algorithm::HS512, OLD_SECRET);
    assert_eq!(
        key_with(Some(rotated)).await.expect("send").status(),
        200,
        "alternate key"
    );

    let now = Utc::now().timestamp();
    let with = |k: &str, v: Value| {
        let mut c = claims(&kid, &id);
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = claims(&kid, &id);
        c.as_object_mut().expect("obj").remove(k);
        c
    };
    let none_alg = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims(&kid, &id).to_string().as_bytes())
    );
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        ("garbage", Some("not-a-token".into()), 401),
        ("alg none", Some(none_alg), 401),
        (
            "wrong signature",
            Some(jwt(
                claims(&kid, &id),
                Algorithm::HS256,
                b"another-secret-another-secret-00",
            )),
            401,
        ),
        (
            "expired",
            Some(jwt(with("exp", json!(now - 300)), Algorithm::HS256, SECRET)),
            401,
        ),
        (
            "not yet valid",
            Some(jwt(with("nbf", json!(now + 300)), Algorithm::HS256, SECRET)),
            401,
        ),
        ("no exp", Some(jwt(without("exp"), Algorithm::HS256, SECRET)), 401),
        (
            "wrong issuer",
            Some(jwt(with("iss", json!("https://evil")), Algorithm::HS256, SECRET)),
            401,
        ),
        (
            "wrong audience",
            Some(jwt(with("aud", json!("other")), Algorithm::HS256, SECRET)),
            401,
        ),
        (
            "claim value",
            Some(jwt(with("entitled", json!("no")), Algorithm::HS256, SECRET)),
            403,
        ),
        (
            "missing claim",
            Some(jwt(without("sub"), Algorithm::HS256, SECRET)),
            403,
        ),
        (
            "another key id",
            Some(jwt(
                with("kid", json!(uuid::Uuid::new_v4().to_string())),
                Algorithm::HS256,
                SECRET,
            )),
            403,
        ),
    ];
    for (what, token, status) in cases {
        let r = key_with(token).await.expect("send");
        assert_eq!(r.status().as_u16(), status, "{what}");
        let v: Value = r.json().await.expect("json error body");
        assert!(v["error"]["message"].is_string(), "{what}: {v}");
        assert!(!v.to_string().contains(&b64(&key)), "{what}: nothing leaked");
    }
    let r = key_with(Some(good.clone())).await.expect("send");
    assert_eq!(r.status(), 200);
    let other = http
        .get(format!("{origin}/keys/{}", uuid::Uuid::new_v4()))
        .bearer_auth(&good)
        .send()
        .await
        .expect("send");
    assert_eq!(other.status(), 404);

    // Clear Key licences.
    let ck = |body: String| http.post(&licence).bearer_auth(&good).body(body).send();
    let r = ck(json!({"kids": [b64url(&kid_bytes)], "type": "temporary"}).to_string())
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let lic: Value = r.json().await.expect("json");
    assert_eq!(lic["keys"][0]["kid"], b64url(&kid_bytes));
    assert_eq!(lic["keys"][0]["k"], b64url(&key));
    for (body, status) in [
        ("{not json".to_string(), 400),
        (json!({"kids": []}).to_string(), 400),
        (json!({"kids": ["AAAA"]}).to_string(), 400),
        ("x".repeat(20_000), 413),
    ] {
        assert_eq!(ck(body).await.expect("send").status().as_u16(), status);
    }
    let r = http
        .post(&licence)
        .body(json!({"kids": [b64url(&kid_bytes)]}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    // ffmpeg decodes the AES-128 HLS stream, fetching the key with the token.
    let header = format!("Authorization: Bearer {good}\r\n");
    let counts = frames(&["-headers", &header, &hls]);
    assert_eq!(counts, vec![125, 125], "every frame of both renditions");
    // Without the token the key is refused and nothing decodes.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_streams", "-of", "json", &hls])
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let decoded: u64 = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0))
        .sum();
    assert!(!out.status.success() || decoded < 250, "no key, no frames");

    // ffmpeg decrypts the CENC output with the key.
    let rendition = set_rendition(&api, &id).await;
    let enc_path = fetch_protected(&http, &ism, &rendition, "cenc", 5, &dir).await;
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let p = decrypted_probe(&enc_path, &key_hex);
    assert_eq!(p["streams"][0]["nb_read_frames"], "125", "every frame decrypted: {p}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffmpeg -v error -decryption_key {key_hex} -i pipe:0 -f null - < {}",
            enc_path.display()
        ))
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffmpeg -v error -decryption_key 00000000000000000000000000000000 -i pipe:0 -f null - < {}",
            enc_path.display()
        ))
        .output()
        .expect("ffmpeg");
    assert!(
        !wrong.status.success() || !wrong.stderr.is_empty(),
        "a wrong key does not decode cleanly"
    );

    // Real players: hls.js with AES-128 and a token; dash.js and shaka with Clear Key licences and a token.
    play("hls", &hls, Some(&good), None);
    play("dash", &dash, Some(&good), Some(&licence));
    play("shaka", &dash, Some(&good), Some(&licence));

    // cbcs (AES-CBC 1:9 pattern) for DASH: shaka plays it with the same key, ffmpeg decrypts it; the asset keeps
    // its content key. HLS is named by no policy now: blocked.
    let (s, set2) = api
        .call(
            Method::PUT,
            &format!("/assets/{id}/delivery-policies"),
            Some(
                json!({"policies": [{"protocols": ["dash"], "protection": "cbcs", "key_policy": "viewers",
                "drm": [{"system": "clearkey"}]}]}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{set2}");
    assert_eq!(set2["content_keys"][0]["kid"], kid.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = http.get(&hls).send().await.expect("send");
    assert_eq!(r.status(), 403, "HLS is blocked");
    let mpd = http.get(&dash).send().await.expect("send").text().await.expect("mpd");
    assert!(mpd.contains("value=\"cbcs\"") && mpd.contains("cbcs/init.mp4"), "{mpd}");
    let cbcs_path = fetch_protected(&http, &ism, &rendition, "cbcs", 5, &dir).await;
    let p = decrypted_probe(&cbcs_path, &key_hex);
    assert_eq!(p["streams"][0]["nb_read_frames"], "125", "cbcs decrypted: {p}");
    play("shaka", &dash, Some(&good), Some(&licence));

    // Retiring the key is a new content version (issue 15 item 2): the MPD moves to the replacement key's URLs, and
    // the old key's segment URLs are 404 (before, both keys' segments had one URL, so a cache could serve either).
    let old_ver = content_version(&mpd);
    let (s, v) = api
        .call(Method::POST, &format!("/content-keys/{kid}/retire"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mpd = http.get(&dash).send().await.expect("send").text().await.expect("mpd");
    let new_ver = content_version(&mpd);
    assert_ne!(new_ver, old_ver, "{mpd}");
    for (ver, status) in [(&old_ver, 404), (&new_ver, 200)] {
        let url = format!("{ism}/{ver}/{rendition}/cbcs/seg-00000.m4s");
        let r = http.get(&url).send().await.expect("send");
        assert_eq!(r.status(), status, "{url}");
    }

    // No plaintext key anywhere: DynamoDB items and this run's logs.
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let items = dynamo
        .scan()
        .table_name(&stack.spec.tables[0].name)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let dump = format!("{items:?}");
    let logs = String::from_utf8_lossy(&logs.0.lock().expect("logs")).to_string();
    assert!(logs.contains("key released"), "logs were captured");
    let secrets = [
        key_hex.clone(),
        b64(&key),
        b64url(&key),
        b64(SECRET),
        String::from_utf8_lossy(SECRET).to_string(),
    ];
    for s in &secrets {
        assert!(!dump.contains(s), "DynamoDB holds a plaintext secret");
        assert!(!logs.contains(s), "the logs hold a plaintext secret");
    }
    assert!(!logs.contains(&good), "the logs hold a token");
    finish(stack).await;
}

/// Issue 15 item 1: the key service honours the delivery policy. A Widevine/PlayReady-only asset gets neither the
/// raw key nor a Clear Key licence (before: both, with a valid token); HLS AES-128 gets the raw key but no licence;
/// Clear Key gets the licence but not the raw key. Tokens are bound to their asset, live no longer than the policy
/// allows, and a retired key is never released again (its replacement is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_leave_only_as_the_delivery_policies_say() {
    let stack = stack("keyrules").await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    let dir = scratch("keyrules");
    let source = h264_aac_mp4(&dir, "clip.mp4", "160x120", 25, 1);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = api.upload_id(&source).await;
        assert_eq!(api.wait_final(&id).await["state"], "Probed");
        ids.push(id);
    }
    let (id, other) = (ids[0].clone(), ids[1].clone());
    let policy = json!({"name": "viewers", "options": [{"restriction": "token", "issuer": ISSUER, "audience": AUDIENCE,
        "primary_key": {"type": "symmetric", "key": b64(SECRET)}, "key_id_claim": "kid", "max_lifetime_secs": 3600}]});
    let (s, v) = api.call(Method::POST, "/key-policies", Some(policy)).await;
    assert_eq!(s, 201, "{v}");
    let set = |policies: Value| {
        let api = &api;
        let id = id.clone();
        async move {
            let (s, v) = api
                .call(
                    Method::PUT,
                    &format!("/assets/{id}/delivery-policies"),
                    Some(json!({ "policies": policies })),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v["content_keys"].as_array().expect("keys").clone()
        }
    };
    let keys = set(
        json!([{"protocols": ["dash", "hls"], "protection": "cenc", "key_policy": "viewers", "drm": [
        {"system": "widevine", "license_url": "https://licence.example/widevine"},
        {"system": "playready", "license_url": "https://licence.example/playready"}]}]),
    )
    .await;
    let kid = keys[0]["kid"].as_str().expect("kid").to_string();
    let kid_b64 = b64url(uuid::Uuid::parse_str(&kid).expect("uuid").as_bytes());
    let origin = stack.api_url();
    let token = jwt(claims(&kid, &id), Algorithm::HS256, SECRET);
    let raw = |token: String, kid: String| http.get(format!("{origin}/keys/{kid}")).bearer_auth(token).send();
    let licence = |token: String, kid: String| {
        let kid = b64url(uuid::Uuid::parse_str(&kid).expect("uuid").as_bytes());
        http.post(format!("{origin}/keys/clearkey"))
            .bearer_auth(token)
            .body(json!({ "kids": [kid] }).to_string())
            .send()
    };
    let status = |r: reqwest::Response| async move {
        let s = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (s, body)
    };
    // Widevine + PlayReady only: neither.
    let (s, body) = status(raw(token.clone(), kid.clone()).await.expect("send")).await;
    assert_eq!(s, 403, "raw key of a Widevine-only asset: {body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| m.contains("AES-128")),
        "{body}"
    );
    let (s, body) = status(licence(token.clone(), kid.clone()).await.expect("send")).await;
    assert_eq!(s, 403, "Clear Key licence of a Widevine-only asset: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Clear Key")),
        "{body}"
    );
    // HLS AES-128: the raw key, no licence.
    set(json!([{"protocols": ["hls"], "protection": "aes128", "key_policy": "viewers"}])).await;
    let (s, body) = status(raw(token.clone(), kid.clone()).await.expect("send")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        status(licence(token.clone(), kid.clone()).await.expect("send")).await.0,
        403
    );
    // Clear Key: the licence, not the raw key.
    set(json!([{"protocols": ["dash"], "protection": "cenc", "key_policy": "viewers", "drm": [{"system": "clearkey"}]}]))
        .await;
    let r = licence(token.clone(), kid.clone()).await.expect("send");
    assert_eq!(r.status(), 200);
    let lic: Value = r.json().await.expect("licence");
    assert_eq!(lic["keys"][0]["kid"], kid_b64.as_str());
    assert_eq!(
        status(raw(token.clone(), kid.clone()).await.expect("send")).await.0,
        403
    );
    // Bound to the asset: a token for another asset, or for none, does not open this one.
    let (s, body) = status(
        licence(jwt(claims(&kid, &other), Algorithm::HS256, SECRET), kid.clone())
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 403, "another asset's token: {body}");
    let mut unbound = claims(&kid, &id);
    unbound.as_object_mut().expect("claims").remove("asset");
    let (s, _) = status(
        licence(jwt(unbound, Algorithm::HS256, SECRET), kid.clone())
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 403, "a token bound to no asset");
    // Lifetime: a token living two hours under a one-hour policy is refused.
    let mut long = claims(&kid, &id);
    long["exp"] = json!(Utc::now().timestamp() + 7200);
    let (s, body) = status(
        licence(jwt(long, Algorithm::HS256, SECRET), kid.clone())
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 401, "{body}");
    // Retired: never released again; the replacement is.
    let (s, v) = api
        .call(Method::POST, &format!("/content-keys/{kid}/retire"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["retired"]["retired_at"].is_string(), "{v}");
    let new_kid = v["replacement"]["kid"].as_str().expect("a replacement key").to_string();
    assert_ne!(new_kid, kid);
    let (s, body) = status(licence(token.clone(), kid.clone()).await.expect("send")).await;
    assert_eq!(s, 403, "a retired key: {body}");
    let fresh = jwt(claims(&new_kid, &id), Algorithm::HS256, SECRET);
    assert_eq!(
        status(licence(fresh, new_kid.clone()).await.expect("send")).await.0,
        200
    );
    let (s, v) = api.call(Method::GET, &format!("/assets/{id}/content-keys"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2), "{v}");
    finish(stack).await;
}

/// Requests a recording server saw: method, path, whether it carried (or asked to carry) a token.
type RequestLog = Arc<Mutex<Vec<(String, String, bool)>>>;

/// A tiny HTTP server for the player test: serves `dir` with CORS (preflights answered) and records, per request,
/// the method, path and whether it carried (or asked to carry) an `Authorization` header.
fn recording_server(dir: std::path::PathBuf) -> (String, RequestLog) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut auth = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                let l = line.to_ascii_lowercase();
                auth |= l.starts_with("authorization:")
                    || (l.starts_with("access-control-request-headers:") && l.contains("authorization"));
            }
            let mut parts = request.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            if let Ok(mut l) = log.lock() {
                l.push((method.clone(), path.clone(), auth));
            }
            let body = if method == "GET" {
                std::fs::read(dir.join(path.trim_start_matches('/'))).ok()
            } else {
                Some(Vec::new())
            };
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            let mut out = stream;
            let head = format!(
                "HTTP/1.1 {status}\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: authorization\r\nAccess-Control-Allow-Methods: GET, OPTIONS\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body);
        }
    });
    (origin, seen)
}

/// Issue 15 item 9: the player page sends a viewer's token only to the key server's origin. Before, hls.js sent it
/// with every key request, so a playlist whose `EXT-X-KEY` pointed at another host received the token.
#[test]
fn the_player_sends_tokens_only_to_the_key_server() {
    let dir = scratch("token-origin");
    std::fs::write(dir.join("key"), [7u8; 16]).expect("key");
    std::fs::write(dir.join("keyinfo"), format!("KEYURI\n{}\n", dir.join("key").display())).expect("keyinfo");
    let info = dir.join("keyinfo");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_key_info_file",
            info.to_str().expect("utf-8"),
            "-hls_segment_filename",
            dir.join("seg%d.ts").to_str().expect("utf-8"),
        ],
        &dir.join("base.m3u8"),
    );
    let (streams, stream_log) = recording_server(dir.clone());
    let (elsewhere, elsewhere_log) = recording_server(dir.clone());
    let playlist = std::fs::read_to_string(dir.join("base.m3u8")).expect("playlist");
    assert!(playlist.contains("URI=\"KEYURI\""), "{playlist}");
    std::fs::write(
        dir.join("good.m3u8"),
        playlist.replace("KEYURI", &format!("{streams}/key")),
    )
    .expect("good");
    std::fs::write(
        dir.join("evil.m3u8"),
        playlist.replace("KEYURI", &format!("{elsewhere}/key")),
    )
    .expect("evil");
    let token = "viewer-token";
    let authorized = |log: &RequestLog| -> Vec<(String, String, bool)> {
        log.lock()
            .expect("log")
            .iter()
            .filter(|(_, p, _)| p == "/key")
            .cloned()
            .collect()
    };
    // A playlist pointing its key elsewhere: the key is fetched (and the stream plays) but without the token.
    let r = play_with(
        "hls",
        &format!("{streams}/evil.m3u8"),
        Some(token),
        None,
        &["--keys", &streams],
    );
    let fetched = authorized(&elsewhere_log);
    assert!(!fetched.is_empty(), "the key was fetched from the other origin");
    assert!(
        fetched.iter().all(|(_, _, auth)| !auth),
        "no token (nor a preflight for one) went to another origin: {fetched:?}"
    );
    assert!(r.to_string().contains("token-withheld"), "{r}");
    // The key server's own key URI gets the token.
    play_with(
        "hls",
        &format!("{streams}/good.m3u8"),
        Some(token),
        None,
        &["--keys", &streams],
    );
    assert!(
        authorized(&stream_log).iter().any(|(m, _, auth)| m == "GET" && *auth),
        "the key server received the token: {:?}",
        authorized(&stream_log)
    );
}

/// Downloads a rendition's protected init segment and `segments` fragments into one file.
async fn fetch_protected(
    http: &reqwest::Client,
    ism: &str,
    rendition: &str,
    scheme: &str,
    segments: u32,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let mut file = Vec::new();
    let mut urls = vec![format!("{ism}/{rendition}/{scheme}/init.mp4")];
    urls.extend((0..segments).map(|n| format!("{ism}/{rendition}/{scheme}/seg-{n:05}.m4s")));
    for url in urls {
        let r = http.get(&url).send().await.expect("send");
        assert_eq!(r.status(), 200, "{url}");
        file.extend(r.bytes().await.expect("body"));
    }
    let path = dir.join(format!("{scheme}.mp4"));
    std::fs::write(&path, &file).expect("write");
    path
}

/// ffprobe of a CENC file decrypted with `key_hex`, streamed in as a player reads it (ffmpeg 5.1 mis-pairs
/// fragments and their encryption info when it can seek a multi-fragment file).
fn decrypted_probe(path: &std::path::Path, key_hex: &str) -> Value {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffprobe -v error -count_frames -select_streams v -show_streams -of json -decryption_key {key_hex} \
             -i pipe:0 < {}",
            path.display()
        ))
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The name of the asset's first rendition.
async fn set_rendition(api: &Api, id: &str) -> String {
    let (_, a) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    a["output"]["renditions"][0]["name"]
        .as_str()
        .expect("rendition")
        .to_string()
}

/// Storage encryption: the uploader encrypts the mezzanine with its own data key (AES-256-CTR, sent once and
/// stored only KMS-wrapped); ingest probes, the encoder decodes and the packager serves through decryption, while
/// every raw object in the buckets is ciphertext that no player can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_encrypted_asset_is_ciphertext_at_rest_and_plays_through_the_packager() {
    let stack = stack_with("storage-enc", &[("ManifestTtlSeconds", "1")]).await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    let dir = scratch("storage_enc");
    let source = h264_aac_mp4(&dir, "secret.mp4", "320x240", 25, 3);
    let plain = std::fs::read(&source).expect("read");
    let data_key: [u8; 32] = *uuid::Uuid::new_v4().as_bytes().repeat(2).first_chunk().expect("32");

    let (s, created) = api
        .call(
            Method::POST,
            "/assets",
            Some(
                json!({"file_name": "secret.mp4", "size": plain.len(), "storage_encryption": {"key": b64(&data_key)}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert!(
        !created.to_string().contains(&b64(&data_key)),
        "the data key is not echoed"
    );
    let id = created["asset"]["id"].as_str().expect("id").to_string();
    let object_key = created["asset"]["upload_key"].as_str().expect("upload key").to_string();
    let mut cipher = plain.clone();
    vod_domain::storage::ctr_apply(&data_key, &object_key, 0, &mut cipher).expect("encrypt");
    let put = created["upload"]["url"].as_str().expect("url");
    let r = http.put(put).body(cipher.clone()).send().await.expect("put");
    assert!(r.status().is_success());
    let probed = api.wait_final(&id).await;
    assert_eq!(probed["state"], "Probed", "ingest probes through decryption: {probed}");
    assert_eq!(probed["media"]["video"][0]["width"], 320);

    // Not encodable-and-publishable without a policy; encoding works.
    let job = api.start_job(&id, "tiny").await;
    assert_eq!(
        wait_job(&api, job["id"].as_str().expect("job"), 600).await["state"],
        "Finished"
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/locators",
            Some(json!({"asset": id, "kind": "streaming"})),
        )
        .await;
    assert_eq!(s, 409, "a storage-encrypted asset needs a delivery policy: {v}");

    // Raw objects are ciphertext: the uploaded source and a rendition's progressive MP4 do not probe.
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .build(),
    );
    let raw = |bucket: String, key: String| {
        let s3 = s3.clone();
        async move {
            let o = s3.get_object().bucket(bucket).key(key).send().await.expect("get");
            o.body.collect().await.expect("body").into_bytes().to_vec()
        }
    };
    let up = raw(
        stack.bucket("UploadBucket").expect("bucket").to_string(),
        object_key.clone(),
    )
    .await;
    assert_eq!(up, cipher, "the bucket holds what the uploader encrypted");
    let prog_key = asset["output"]["renditions"][0]["progressive"]
        .as_str()
        .expect("prog")
        .to_string();
    let bucket = asset["output"]["bucket"].as_str().expect("bucket").to_string();
    let raw_prog = raw(bucket.clone(), prog_key).await;
    let raw_path = dir.join("raw-progressive.mp4");
    std::fs::write(&raw_path, &raw_prog).expect("write");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams"])
        .arg(&raw_path)
        .output()
        .expect("ffprobe");
    assert!(!out.status.success(), "raw output objects are not playable media");
    let idx_key = asset["output"]["renditions"][0]["index"]
        .as_str()
        .expect("index")
        .to_string();
    let raw_idx = raw(bucket, idx_key).await;
    assert!(
        serde_json::from_slice::<Value>(&raw_idx).is_err(),
        "even the index is ciphertext"
    );

    // With a (clear) delivery policy it streams and downloads through the packager.
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/assets/{id}/delivery-policies"),
            Some(json!({"policies": [{"protocols": ["hls", "dash", "progressive"], "protection": "clear"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let counts = frames(&[loc["urls"]["hls"].as_str().expect("hls")]);
    assert_eq!(counts, vec![75, 75], "decrypted on the fly: {counts:?}");
    let dl = api.locator(json!({"asset": id, "kind": "download"})).await;
    assert!(
        dl["downloads"][0]["presigned_url"].is_null(),
        "no presigned URL to ciphertext: {dl}"
    );
    let url = dl["downloads"][0]["url"]
        .as_str()
        .expect("packager download url")
        .to_string();
    let file = dir.join("download.mp4");
    let body = http.get(&url).send().await.expect("send").bytes().await.expect("body");
    std::fs::write(&file, &body).expect("write");
    assert_eq!(
        frames(&[file.to_str().expect("path")]),
        vec![75],
        "the download decrypts through the packager"
    );
    finish(stack).await;
}
