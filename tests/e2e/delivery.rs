//! Delivery end to end: an encoded asset is published with locators and played from the packager's URLs by real
//! clients — ffprobe/ffmpeg read the HLS and DASH URLs and decode every frame, the progressive MP4 is fetched with
//! Range, and hls.js, dash.js and shaka-player play in headless Chromium. Time-bound, deleted and filtered
//! locators and hostile requests get the answers they must.
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// ffprobe over a URL: per video stream (width, frames read), and the container duration.
fn probe_url(url: &str) -> (Vec<(u64, u64)>, f64, bool) {
    let p = ffprobe(&["-count_frames", "-show_streams", "-show_format", url]);
    let streams = p["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| {
            (
                s["width"].as_u64().unwrap_or(0),
                s["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0),
            )
        })
        .collect();
    let audio = streams
        .iter()
        .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "opus");
    let dur = p["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (video, dur, audio)
}

/// Decodes the whole stream with ffmpeg; errors of any kind fail.
fn decode_all(url: &str) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i", url, "-map", "0", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decode {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = http.get(url).send().await.expect("send");
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.bytes().await.expect("body").to_vec())
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("not a JSON error: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_asset_plays_in_ffmpeg_and_browsers() {
    let stack = stack_with("deliver", &[("ManifestTtlSeconds", "1"), ("CdnRecheckSeconds", "2")]).await;
    let api = Api::new(&stack);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let dir = scratch("deliver");
    let source = h264_aac_mp4(&dir, "clip.mp4", "320x240", 25, 5);
    let asset = api.upload(&source).await.expect("upload");
    let id = asset["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&id).await["state"], "Probed");

    // Not encoded yet: nothing to publish.
    let (s, v) = api
        .call(
            Method::POST,
            "/locators",
            Some(json!({"asset": id, "kind": "streaming"})),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    let job = api.start_job(&id, "tiny").await;
    let done = wait_job(&api, job["id"].as_str().expect("job"), 600).await;
    assert_eq!(done["state"], "Finished", "{done}");

    let (_, ready) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let mut rungs: Vec<(u64, u64)> = ready["output"]["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .map(|r| (r["bitrate"].as_u64().unwrap_or(0), r["width"].as_u64().unwrap_or(0)))
        .collect();
    rungs.sort();
    let (lowest, lowest_width) = rungs[0];

    // Filters: the first two seconds (an asset filter) and the low rendition (a global filter, AMS syntax).
    let (s, f) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/filters"),
            Some(json!({"name": "first2s", "start": 0, "end": 2})),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, f) = api
        .call(
            Method::POST,
            "/filters",
            Some(json!({"name": "low", "tracks": [{"type": "video", "bitrate": format!("0-{lowest}")}, {"type": "audio"}]})),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, v) = api
        .call(Method::POST, "/filters", Some(json!({"name": "../x", "start": 1})))
        .await;
    assert_eq!(s, 400, "{v}");

    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let hls = loc["urls"]["hls"].as_str().expect("hls url").to_string();
    let dash = loc["urls"]["dash"].as_str().expect("dash url").to_string();
    let hls_cmaf = loc["urls"]["hls_cmaf"].as_str().expect("hls_cmaf").to_string();
    let dash_cmaf = loc["urls"]["dash_cmaf"].as_str().expect("dash_cmaf").to_string();
    assert!(hls.starts_with(&stack.api_url()), "{hls}");
    let (s, listed) = api.call(Method::GET, &format!("/assets/{id}/locators"), None).await;
    assert_eq!(s, 200);
    assert_eq!(listed["items"][0]["id"], loc["id"]);

    // The master playlist and MPD say what they carry.
    let (s, h, body) = get(&http, &hls).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(h["access-control-allow-origin"], "*");
    let master = String::from_utf8(body).expect("utf8");
    assert!(master.contains("#EXT-X-VERSION:7"), "{master}");
    assert!(master.contains("CODECS=\"av01.0."), "{master}");
    assert!(master.contains(",opus\""), "{master}");
    assert!(
        master.contains("RESOLUTION=320x180") || master.contains("RESOLUTION=240x180"),
        "{master}"
    );
    assert!(master.contains("FRAME-RATE=25.000") && master.contains("AVERAGE-BANDWIDTH="));
    let (s, h, body) = get(&http, &dash).await;
    assert_eq!(
        (s, h["content-type"].to_str().ok()),
        (200, Some("application/dash+xml"))
    );
    let mpd = String::from_utf8(body).expect("utf8");
    assert!(mpd.contains("mediaPresentationDuration=\"PT5.000S\""), "{mpd}");

    // ffmpeg reads both protocols (friendly and AMS URLs) and decodes every frame of every rendition.
    for url in [&hls, &dash, &hls_cmaf, &dash_cmaf] {
        let (video, dur, audio) = probe_url(url);
        assert_eq!(video.len(), 2, "{url}: two renditions: {video:?}");
        assert!(
            video.iter().all(|(_, frames)| *frames == 125),
            "{url}: every frame: {video:?}"
        );
        assert!((dur - 5.0).abs() < 0.1, "{url}: duration {dur}");
        assert!(audio, "{url}: opus audio");
    }
    decode_all(&hls);
    decode_all(&dash);

    // Filters: the time filter shortens the presentation to its two segments; the bitrate filter keeps one rung.
    let first2 = format!("{hls}?filter=first2s");
    let (video, dur, _) = probe_url(&first2);
    assert!((dur - 2.0).abs() < 0.1, "filtered duration {dur}");
    assert!(video.iter().all(|(_, f)| *f == 50), "{video:?}");
    let ism = hls_cmaf.rsplit_once('/').expect("ism").0.to_string();
    // Content versions (issue 15 item 2): every URI the manifests write carries the asset's current version.
    let ver = content_version(&master);
    for uri in master.lines().filter(|l| !l.starts_with('#')) {
        assert!(uri.contains(&format!(".ism/{ver}/")), "{uri} in {master}");
    }
    assert!(mpd.contains(&format!(".ism/{ver}/")), "{mpd}");
    let vism = format!("{ism}/{ver}");
    let (video, dur, _) = probe_url(&format!("{ism}/manifest(format=mpd-time-cmaf,filter=first2s;low)"));
    assert_eq!(video, vec![(lowest_width, 50)], "only the lowest rung, two segments");
    assert!((dur - 2.0).abs() < 0.1, "{dur}");
    let (s, _, body) = get(&http, &format!("{hls}?filter=nope")).await;
    assert_eq!((s, error_code(&body)), (400, "unknown_filter".into()));
    // A locator's own filters bind its segments too (issue 15 item 2; before, any segment of the asset was served
    // under a filtered locator): the first two seconds of the low rendition only.
    let filtered = api
        .locator(json!({"asset": id, "kind": "streaming", "filters": ["first2s", "low"]}))
        .await;
    let fism = filtered["urls"]["hls_cmaf"]
        .as_str()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(a, _)| a.to_string())
        .expect("filtered ism");
    let low = rungs_names(&asset_now(&api, &id).await, lowest);
    for (path, status) in [
        (format!("{fism}/{ver}/{}/seg-00000.m4s", low.0), 200),
        (format!("{fism}/{ver}/{}/seg-00001.m4s", low.0), 200),
        (format!("{fism}/{ver}/{}/seg-00003.m4s", low.0), 404),
        (format!("{fism}/{ver}/{}/seg-00000.m4s", low.1), 404),
        (format!("{fism}/{ver}/{}/init.mp4", low.1), 404),
        (format!("{fism}/{ver}/audio/seg-00000.m4s"), 200),
        (format!("{fism}/{ver}/audio/seg-00004.m4s"), 404),
    ] {
        let (s, _, body) = get(&http, &path).await;
        assert_eq!(s, status, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // Segments: immutable, with an ETag that a conditional request (no S3 read) and HEAD honour.
    let media: String = {
        let (_, _, b) = get(&http, &format!("{vism}/audio/media.m3u8")).await;
        String::from_utf8(b).expect("utf8")
    };
    assert!(
        media.contains("#EXT-X-MAP:URI=\"init.mp4\"") && media.ends_with("#EXT-X-ENDLIST\n"),
        "{media}"
    );
    let seg = format!("{vism}/audio/seg-00001.m4s");
    let (s, h, body) = get(&http, &seg).await;
    assert_eq!(s, 200);
    // Cached for SegmentMaxAgeSeconds (default one hour), not for the locator's whole life (a day here).
    assert_eq!(
        h["cache-control"].to_str().unwrap_or(""),
        "public, max-age=3600, immutable"
    );
    // One spelling per URL (issue 15 item 2): the locator's own `{name}.ism`, the manifests' segment numbers, and
    // the filter query on manifests only — before, each of these answered 200 under another cache key.
    let (prefix, ism_name) = ism.rsplit_once('/').expect("ism path");
    for (other, status) in [
        (format!("{prefix}/another-name.ism/{ver}/audio/seg-00001.m4s"), 404),
        (format!("{vism}/audio/seg-1.m4s"), 404),
        (format!("{vism}/audio/seg-000001.m4s"), 404),
        (format!("{vism}/manifest(format=m3u8-cmaf)"), 404),
        (format!("{seg}?filter=first2s"), 400),
    ] {
        let (s, _, body) = get(&http, &other).await;
        assert_eq!(s, status, "{other} ({ism_name}): {}", String::from_utf8_lossy(&body));
    }
    assert!(
        body.len() > 100 && (&body[4..8] == b"styp" || &body[4..8] == b"moof"),
        "a CMAF fragment"
    );
    // Without a version: a redirect to the current one, cached like a manifest (1 s here); another version: 404.
    let r = http
        .get(format!("{ism}/audio/seg-00001.m4s"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "public, max-age=1");
    let location = r.headers()["location"].to_str().expect("location").to_string();
    assert!(seg.ends_with(&location), "{location}");
    let (s, _, stale) = get(&http, &format!("{ism}/v.0123456789abcdef/audio/seg-00001.m4s")).await;
    assert_eq!((s, error_code(&stale)), (404, "stale_version".into()));
    let etag = h["etag"].clone();
    let r = http.get(&seg).header("if-none-match", etag).send().await.expect("send");
    assert_eq!(r.status(), 304);
    let r = http.head(&seg).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"]
            .to_str()
            .ok()
            .and_then(|l| l.parse::<usize>().ok()),
        Some(body.len())
    );

    // Hostile and malformed requests: JSON 4xx, nothing outside the asset.
    let loc_root = hls.trim_end_matches("/main.m3u8").to_string();
    let base = loc_root.rsplit_once('/').expect("base").0.to_string();
    for (url, status) in [
        (format!("{ism}/manifest(format=smooth)"), 400),
        (format!("{ism}/manifest"), 400),
        (format!("{ism}/manifest(format=m3u8-cmaf"), 400),
        (format!("{vism}/audio/seg-99999.m4s"), 404),
        (format!("{vism}/1080p/init.mp4"), 404),
        (format!("{ism}/..%2F..%2Fsource.mp4/init.mp4"), 400),
        // (clients normalise `%2e%2e` away: the path that arrives names no track)
        (format!("{ism}/%2e%2e/init.mp4"), 404),
        (format!("{base}/{}/main.m3u8", uuid::Uuid::new_v4()), 404),
        (format!("{base}/not-a-locator/main.m3u8"), 404),
        (format!("{ism}/240p.mp4"), 403),
    ] {
        let (s, _, body) = get(&http, &url).await;
        assert_eq!(s, status, "{url}: {}", String::from_utf8_lossy(&body));
        assert!(
            !error_code(&body).starts_with("not a JSON"),
            "{url}: {}",
            error_code(&body)
        );
    }
    // No POST route on the stream API: API Gateway (and the local gateway) answer 404 before the packager.
    let r = http.post(&hls).send().await.expect("send");
    assert_eq!(r.status(), 404);

    // Download locator: the progressive MP4 with Range through the packager, assembled from the segments (no
    // stored file, so no presigned URL).
    let dl = api
        .locator(json!({"asset": id, "kind": "download", "duration_secs": 600}))
        .await;
    let d = &dl["downloads"][0];
    let link = d["url"].as_str().expect("download url").to_string();
    assert!(d["presigned_url"].is_null(), "{dl}");
    // The listed link is stable: it redirects to the current version's file.
    let r = http.get(&link).send().await.expect("send");
    assert_eq!(r.status(), 302, "{link}");
    let location = r.headers()["location"].to_str().expect("location").to_string();
    let url = format!("{}{location}", stack.api_url());
    assert!(url.contains(&format!("/{ver}/")), "{url}");
    let r = http.get(&url).header("range", "bytes=0-99").send().await.expect("send");
    assert_eq!(r.status(), 206);
    let total: u64 = r.headers()["content-range"]
        .to_str()
        .ok()
        .and_then(|c| c.strip_prefix("bytes 0-99/"))
        .and_then(|t| t.parse().ok())
        .expect("content-range");
    assert_eq!(r.bytes().await.expect("body").len(), 100);
    let r = http
        .get(&url)
        .header("range", format!("bytes={total}-"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 416);
    let r = http
        .get(&url)
        .header("range", "bytes=0-999999999999")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206);
    let file = dir.join("download.mp4");
    std::fs::write(&file, r.bytes().await.expect("body")).expect("write");
    assert_eq!(std::fs::metadata(&file).expect("file").len(), total);
    let (video, dur, audio) = probe_url(file.to_str().expect("path"));
    assert_eq!(video.len(), 1);
    assert_eq!(video[0].1, 125);
    assert!((dur - 5.0).abs() < 0.1 && audio);
    let (video, _, _) = probe_url(&link);
    assert_eq!(video[0].1, 125, "ffprobe over HTTP with ranges, through the redirect");
    let (s, _, body) = get(
        &http,
        &format!(
            "{}/main.m3u8",
            url.rsplit_once(".ism").expect("ism").0.rsplit_once('/').expect("/").0
        ),
    )
    .await;
    assert_eq!((s, error_code(&body)), (403, "wrong_locator_kind".into()));

    // Time-bound locators: not yet valid, expired; a deleted locator stops working within the TTL (1 s here).
    let now = Utc::now();
    let later = api
        .locator(json!({"asset": id, "kind": "streaming", "start": (now + chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    let (s, _, body) = get(&http, later["urls"]["hls"].as_str().expect("hls")).await;
    assert_eq!((s, error_code(&body)), (403, "locator_not_yet_valid".into()));
    let past = api
        .locator(json!({"asset": id, "kind": "streaming",
                "start": (now - chrono::Duration::hours(2)).to_rfc3339(),
                "end": (now - chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    let (s, _, body) = get(&http, past["urls"]["dash"].as_str().expect("dash")).await;
    assert_eq!((s, error_code(&body)), (410, "locator_expired".into()));
    for bad in [
        json!({"asset": id, "kind": "streaming", "duration_secs": 0}),
        json!({"asset": id, "kind": "streaming", "end": "2000-01-01T00:00:00Z"}),
        json!({"asset": id, "kind": "streaming", "filters": ["nope"]}),
        json!({"asset": id, "kind": "live"}),
        json!({"asset": id, "kind": "streaming", "duration_secs": 999999999}),
    ] {
        let (s, v) = api.call(Method::POST, "/locators", Some(bad.clone())).await;
        assert!(s == 400 || s == 404, "{bad} → {s} {v}");
    }

    // Real players in headless Chromium.
    for (player, url) in [("hls", &hls), ("dash", &dash), ("shaka", &dash)] {
        let report = play(player, url, None, None);
        assert!(report["decodedFrames"].as_u64().unwrap_or(0) > 0, "{report}");
    }

    // New captions (an indexing job on the Ready asset) are a new version: the manifests move to it and the old
    // version's URLs are 404, so no cache serves the old bytes under the new content's URLs (before, both had the
    // same URLs). A new encode moves the version likewise (unit `content_versions_change_with_…`).
    let again = api.start_job(&id, "index-speech").await;
    let done = wait_job(&api, again["id"].as_str().expect("job"), 600).await;
    assert_eq!(done["state"], "Finished", "{done}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, _, body) = get(&http, &hls).await;
    assert_eq!(s, 200);
    let newer = content_version(&String::from_utf8(body).expect("utf8"));
    assert_ne!(newer, ver);
    let (s, _, body) = get(&http, &seg).await;
    assert_eq!((s, error_code(&body)), (404, "stale_version".into()));
    let (s, _, _) = get(&http, &seg.replace(&ver, &newer)).await;
    assert_eq!(s, 200);

    let gone = loc["id"].as_str().expect("id");
    let (s, _) = api.call(Method::DELETE, &format!("/locators/{gone}"), None).await;
    assert_eq!(s, 204);
    // Unpublishing invalidated the locator's paths on the CDN (recorded by the emulator's CloudFront).
    let cf = aws_sdk_cloudfront::Client::new(&stack.sdk);
    let distribution = stack.spec.distributions[0]
        .1
        .clone()
        .expect("a provisioned distribution");
    let invalidations = || async {
        let mut invalidated = Vec::new();
        let list = cf
            .list_invalidations()
            .distribution_id(&distribution)
            .send()
            .await
            .expect("list invalidations");
        for summary in list.invalidation_list().map(|l| l.items()).unwrap_or_default() {
            let inv = cf
                .get_invalidation()
                .distribution_id(&distribution)
                .id(summary.id())
                .send()
                .await
                .expect("get invalidation");
            if let Some(batch) = inv.invalidation().and_then(|i| i.invalidation_batch()) {
                invalidated.extend(batch.paths().map(|p| p.items().to_vec()).unwrap_or_default());
            }
        }
        invalidated
            .iter()
            .filter(|p| **p == format!("/stream/{gone}/*"))
            .count()
    };
    assert_eq!(
        invalidations().await,
        1,
        "the unpublished locator's paths were invalidated"
    );
    // ...and again CdnRecheckSeconds later (2 s here), by the sweeper from its queue, once no packager instance
    // still trusts the cached locator (before: once only, so a CDN miss in that window was cached again).
    let started = std::time::Instant::now();
    while invalidations().await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deferred invalidation was never made"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "not before it was due"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, _, body) = get(&http, &hls).await;
    assert_eq!((s, error_code(&body)), (404, "not_found".into()));

    // Deleting the asset removes its locators and filters, and the warm packager drops what it cached of the asset
    // once its next lookup finds it gone (issue 15 item 8; before, the indexes and init segments stayed in memory).
    let packager_cached = || match &stack.host.functions["PackagerFunction"].handler {
        vod_local::host::Handler::Packager(ctx) => {
            ctx.cached_entries_of(vod_domain::AssetId(uuid::Uuid::parse_str(&id).expect("asset id")))
        }
        _ => panic!("the packager is a packager"),
    };
    let download = |link: String| async move { reqwest::get(&link).await.expect("send").status().as_u16() };
    assert_eq!(
        download(link.clone()).await,
        200,
        "the download is served (and its data cached)"
    );
    assert!(packager_cached() > 0, "the warm packager holds the asset's indexes");
    let (s, _) = api.call(Method::DELETE, &format!("/assets/{id}"), None).await;
    assert_eq!(s, 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(download(link.clone()).await, 404, "a deleted asset's download");
    assert_eq!(
        packager_cached(),
        0,
        "the warm packager dropped the deleted asset's data"
    );
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/locators/{}", dl["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    assert_eq!(s, 404);
    finish(stack).await;
}

/// The asset as the API shows it now.
async fn asset_now(api: &Api, id: &str) -> Value {
    let (s, a) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    assert_eq!(s, 200, "{a}");
    a
}

/// The names of the video rendition of bitrate `lowest` and of another one.
fn rungs_names(asset: &Value, lowest: u64) -> (String, String) {
    let renditions = asset["output"]["renditions"].as_array().expect("renditions");
    let name = |want_lowest: bool| {
        renditions
            .iter()
            .find(|r| (r["bitrate"].as_u64() == Some(lowest)) == want_lowest)
            .and_then(|r| r["name"].as_str())
            .expect("a rendition")
            .to_string()
    };
    (name(true), name(false))
}

/// Issue 15 item 6: the stream API throttles as API Gateway does (the `StreamThrottling*` parameters, the API's
/// `DefaultRouteSettings`): past its burst a request is answered 429 with a JSON body before the packager runs, and
/// the rate refills it; the management API is not throttled by them. Before, the local gateway ignored the
/// settings, so nothing showed they reach the stream API's routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_api_throttles_past_its_burst() {
    let stack = stack_with(
        "throttle",
        &[("StreamThrottlingRateLimit", "1"), ("StreamThrottlingBurstLimit", "5")],
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/stream/{}/main.m3u8", stack.api_url(), uuid::Uuid::new_v4());
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (s, h, body) = get(&http, &url).await;
        if s == 429 {
            assert_eq!(h["content-type"], "application/json");
            let v: Value = serde_json::from_slice(&body).expect("a JSON body");
            assert_eq!(v["message"], "Too Many Requests");
        }
        statuses.push(s);
    }
    // The packager answers the burst (no such locator: 404), then the gateway refuses (one token a second).
    assert_eq!(statuses[..5], [404; 5], "{statuses:?}");
    assert!(statuses[5..].iter().filter(|s| **s == 429).count() >= 6, "{statuses:?}");
    let api = Api::new(&stack);
    for _ in 0..12 {
        let (s, v) = api.call(Method::GET, "/assets", None).await;
        assert_eq!(s, 200, "the management API is not throttled: {v}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&http, &url).await.0, 404, "the rate refilled a token");
    finish(stack).await;
}
