//! Every screen: a preset with an AV1 and an H.264 ladder ("tiny-avc"), played where AV1 cannot be decoded. The
//! manifests offer a complete ladder per codec (HLS variants with exact CODECS, one DASH AdaptationSet per codec
//! family); ffmpeg decodes every frame of each H.264 rendition over HLS; hls.js, dash.js and shaka-player in
//! headless Chromium that reports `av01` unsupported play the H.264 renditions, and with AV1 allowed they still
//! play; the same for the encrypted asset (AES-128 HLS, cenc and cbcs with Clear Key).
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_renditions_play_where_av1_cannot() {
    let stack = stack_with("screens", &[("ManifestTtlSeconds", "1")]).await;
    let api = Api::new(&stack);
    let dir = scratch("screens");
    let source = h264_aac_mp4(&dir, "clip.mp4", "320x240", 25, 5);
    let id = api.encoded(&source, "tiny-avc").await;

    let (_, ready) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let renditions = ready["output"]["renditions"].as_array().expect("renditions").clone();
    let codecs_of = |name: &str| -> String {
        renditions
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["codecs"].as_str())
            .unwrap_or_else(|| panic!("no rendition {name}: {renditions:?}"))
            .to_string()
    };
    // Real levels, not AV1's "unconstrained" 31: 320x180 and 160x120 at 25 fps are level 2.0.
    for name in ["180p", "120p"] {
        assert_eq!(codecs_of(name), "av01.0.00M.08", "{name}");
        let avc = codecs_of(&format!("{name}-h264"));
        assert!(avc.starts_with("avc1.64"), "{name}-h264: H.264 High, {avc}");
    }

    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let hls = loc["urls"]["hls"].as_str().expect("hls").to_string();
    let dash = loc["urls"]["dash"].as_str().expect("dash").to_string();
    let http = reqwest::Client::new();
    let text = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.expect("get").text().await.expect("text") }
    };
    // HLS: a variant per rendition with its own exact CODECS; both ladders complete.
    let master = text(hls.clone()).await;
    for name in ["180p", "120p", "180p-h264", "120p-h264"] {
        let codecs = codecs_of(name);
        assert!(
            master
                .lines()
                .zip(master.lines().skip(1))
                .any(|(inf, uri)| inf.contains(&format!("CODECS=\"{codecs},opus\""))
                    && uri.contains(&format!("{name}/"))),
            "{name} variant with CODECS {codecs}: {master}"
        );
    }
    // DASH: one video AdaptationSet per codec family.
    let mpd = text(dash.clone()).await;
    let video_sets: Vec<&str> = mpd
        .split("<AdaptationSet ")
        .filter(|s| s.contains("contentType=\"video\""))
        .collect();
    assert_eq!(video_sets.len(), 2, "{mpd}");
    assert!(
        video_sets.iter().any(|s| s.contains("avc1.64") && !s.contains("av01")),
        "{mpd}"
    );
    assert!(
        video_sets.iter().any(|s| s.contains("av01") && !s.contains("avc1")),
        "{mpd}"
    );

    // ffmpeg decodes every frame of each H.264 rendition (5 s at 25 fps), close to the scaled source.
    let ism = loc["urls"]["hls_cmaf"]
        .as_str()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(a, _)| a.to_string())
        .expect("ism");
    for (name, w, h) in [("180p-h264", 240, 180), ("120p-h264", 160, 120)] {
        let url = format!("{ism}/{name}/media.m3u8");
        let p = ffprobe(&["-count_frames", "-show_streams", &url]);
        let v = stream(&p, "video").unwrap_or_else(|| panic!("{name}: {p}"));
        assert_eq!(v["codec_name"], "h264", "{name}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(w), Some(h)),
            "{name}"
        );
        assert_eq!(v["nb_read_frames"], "125", "{name}: every frame");
        let db = psnr(std::path::Path::new(&url), &source, w, h);
        assert!(db > 28.0, "{name}: PSNR {db}");
    }

    // Players on a device without an AV1 decoder get the H.264 ladder; with AV1 they still play.
    let fed = |r: &Value| -> Vec<String> {
        r["sourceBuffers"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    for (player, src) in [("hls", &hls), ("dash", &dash), ("shaka", &dash)] {
        let r = play_with(player, src, None, None, &["--no-av1"]);
        let buffers = fed(&r);
        assert!(
            buffers.iter().any(|t| t.contains("avc1")),
            "{player} without AV1 fed H.264: {r}"
        );
        assert!(!buffers.iter().any(|t| t.contains("av01")), "{player} without AV1: {r}");
        assert!(r["decodedFrames"].as_u64().unwrap_or(0) > 0, "{player}: {r}");
        let r = play(player, src, None, None);
        assert!(!fed(&r).is_empty(), "{player} with AV1 allowed: {r}");
    }

    // Encrypted, still without AV1: AES-128 HLS (hls.js), cenc with Clear Key (dash.js, shaka-player), then cbcs
    // (shaka-player); an open key policy, so no token.
    let (s, v) = api
        .call(
            Method::POST,
            "/key-policies",
            Some(json!({"name": "screens-open", "options": [{"restriction": "open"}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let set_policies = |policies: Value| {
        let (api, id) = (&api, &id);
        async move {
            api.set_delivery_policies(id, policies).await;
            // Past the packager's manifest and asset cache lifetimes.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
    };
    set_policies(json!([
        {"protocols": ["hls"], "protection": "aes128", "key_policy": "screens-open"},
        {"protocols": ["dash"], "protection": "cenc", "key_policy": "screens-open", "drm": [{"system": "clearkey"}]}
    ]))
    .await;
    let licence = loc["urls"]["clearkey_license"].as_str().expect("licence").to_string();
    let mpd = text(dash.clone()).await;
    assert!(mpd.contains("value=\"cenc\"") && mpd.contains("avc1.64"), "{mpd}");
    for (player, src, lic) in [
        ("hls", &hls, None),
        ("dash", &dash, Some(licence.as_str())),
        ("shaka", &dash, Some(licence.as_str())),
    ] {
        let r = play_with(player, src, None, lic, &["--no-av1"]);
        assert!(
            fed(&r).iter().any(|t| t.contains("avc1")),
            "{player} encrypted without AV1: {r}"
        );
    }
    set_policies(json!([
        {"protocols": ["dash"], "protection": "cbcs", "key_policy": "screens-open", "drm": [{"system": "clearkey"}]}
    ]))
    .await;
    let mpd = text(dash.clone()).await;
    assert!(mpd.contains("value=\"cbcs\""), "{mpd}");
    let r = play_with("shaka", &dash, None, Some(&licence), &["--no-av1"]);
    assert!(
        fed(&r).iter().any(|t| t.contains("avc1")),
        "shaka cbcs without AV1: {r}"
    );
}
