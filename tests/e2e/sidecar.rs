//! Sidecar captions end to end (issue 14 item 5): an SRT in French added to an encoded asset is listed, streamed
//! (an HLS SUBTITLES rendition with its language and label, whose segmented WebVTT carries its cues; a DASH text
//! AdaptationSet with `lang`), served back as WebVTT and TTML and found by in-asset and cross-asset search; a
//! malformed file is refused naming its line; deleting the track takes it out of the manifests and of search.
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// A word no speech engine heard and no other test uploads.
const WORD: &str = "grenouillard";

const SRT: &str = "1\r\n00:00:00,500 --> 00:00:01,500\r\nBonjour <i>tout</i> le monde\r\n\r\n\
                   2\r\n00:00:02,000 --> 00:00:03,000\r\nLe grenouillard chante\r\n";

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.expect("get");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// `POST /assets/{id}/captions` with `body`.
async fn add(api: &Api, id: &str, body: Value) -> (u16, Value) {
    api.call(Method::POST, &format!("/assets/{id}/captions"), Some(body))
        .await
}

/// The subtitles renditions of a multivariant playlist: (NAME, LANGUAGE, URI) of each.
fn subtitle_renditions(master: &str) -> Vec<(String, String, String)> {
    let attr = |line: &str, name: &str| {
        line.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=SUBTITLES"))
        .map(|l| (attr(l, "NAME"), attr(l, "LANGUAGE"), attr(l, "URI")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_srt_is_streamed_and_searched() {
    // Manifests (and the packager's view of the asset) are cached for a second.
    let stack = stack_with("sidecar", &[("ManifestTtlSeconds", "1")]).await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    let dir = scratch("sidecar");
    let id = api
        .encoded(&h264_aac_mp4(&dir, "clip.mp4", "160x120", 25, 4), "tiny")
        .await;

    // A malformed SRT is refused, naming its line; unknown assets and bad languages too.
    let bad = "1\n00:00:00,500 --> 00:00:01,500\nok\n\n2\n00:00:02,000 -> 00:00:03,000\nbroken\n";
    let (s, e) = add(
        &api,
        &id.to_string(),
        json!({"language": "fr", "label": "Français", "format": "srt", "text": bad}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap_or_default().contains("line 5"),
        "{e}"
    );
    let (s, e) = add(
        &api,
        &id.to_string(),
        json!({"language": "fr_FR", "label": "Français", "text": SRT}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let unknown = uuid::Uuid::new_v4();
    let (s, e) = add(
        &api,
        &unknown.to_string(),
        json!({"language": "fr", "label": "Français", "text": SRT}),
    )
    .await;
    assert_eq!(s, 404, "{e}");

    // Added (format detected), listed, served back normalised.
    let (s, track) = add(
        &api,
        &id.to_string(),
        json!({"language": "fr", "label": "Français", "text": SRT}),
    )
    .await;
    assert_eq!(s, 201, "{track}");
    assert_eq!(
        (track["id"].as_str(), track["format"].as_str()),
        (Some("fr-1"), Some("srt")),
        "{track}"
    );
    assert_eq!(track["cue_count"], 2, "{track}");
    let (s, list) = api.call(Method::GET, &format!("/assets/{id}/captions"), None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"][0]["id"], "fr-1", "{list}");
    assert_eq!(list["items"][0]["label"], "Français", "{list}");
    let vtt = api
        .req(Method::GET, &format!("/assets/{id}/captions/fr-1"))
        .send()
        .await
        .expect("vtt");
    assert_eq!(vtt.status(), 200);
    let vtt = vtt.text().await.expect("body");
    assert!(
        vtt.starts_with("WEBVTT\n") && vtt.contains("00:00:02.000 --> 00:00:03.000\nLe grenouillard chante"),
        "{vtt}"
    );
    let ttml = api
        .req(Method::GET, &format!("/assets/{id}/captions/fr-1?format=ttml"))
        .send()
        .await
        .expect("ttml")
        .text()
        .await
        .expect("body");
    assert!(ttml.contains("xml:lang=\"fr\"") && ttml.contains(WORD), "{ttml}");

    // Streamed: an HLS SUBTITLES rendition whose segments carry the cues, a DASH text AdaptationSet.
    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    let hls_url = loc["urls"]["hls"].as_str().expect("hls url").to_string();
    let dash_url = loc["urls"]["dash"].as_str().expect("dash url").to_string();
    let (s, master) = get(&http, &hls_url).await;
    assert_eq!(s, 200, "{master}");
    let subs = subtitle_renditions(&master);
    assert_eq!(subs.len(), 1, "{master}");
    let (name, language, uri) = &subs[0];
    assert_eq!((name.as_str(), language.as_str()), ("Français", "fr"), "{master}");
    assert!(uri.contains("/captions-fr-1/media.m3u8"), "{master}");
    assert!(master.contains(",SUBTITLES=\"subs\""), "{master}");
    let base = hls_url.rsplit_once('/').expect("base").0.to_string();
    let playlist_url = format!("{base}/{uri}");
    let (s, playlist) = get(&http, &playlist_url).await;
    assert_eq!(s, 200, "{playlist}");
    let seg_base = playlist_url.rsplit_once('/').expect("dir").0.to_string();
    let mut segmented = String::new();
    for seg in playlist.lines().filter(|l| l.ends_with(".vtt")) {
        let (s, body) = get(&http, &format!("{seg_base}/{seg}")).await;
        assert_eq!(s, 200, "{seg}: {body}");
        assert!(body.starts_with("WEBVTT\nX-TIMESTAMP-MAP="), "{body}");
        segmented.push_str(&body);
    }
    assert!(
        segmented.contains("Bonjour tout le monde") && segmented.contains("Le grenouillard chante"),
        "{playlist}\n{segmented}"
    );
    let (s, mpd) = get(&http, &dash_url).await;
    assert_eq!(s, 200, "{mpd}");
    assert!(
        mpd.contains("contentType=\"text\" mimeType=\"text/vtt\" lang=\"fr\"")
            && mpd.contains("<Label>Français</Label>")
            && mpd.contains("captions-fr-1/captions.vtt"),
        "{mpd}"
    );
    let file = mpd
        .split("<BaseURL>")
        .filter_map(|b| b.split("</BaseURL>").next())
        .find(|b| b.contains("captions-fr-1/"))
        .expect("captions BaseURL");
    let (s, whole) = get(&http, &format!("{}/{file}", dash_url.rsplit_once('/').expect("base").0)).await;
    assert_eq!(s, 200, "{whole}");
    assert!(whole.contains("Le grenouillard chante"), "{whole}");

    // Searched: in the asset (at its cue's time, from the track) and across assets.
    let (s, found) = api
        .call(Method::GET, &format!("/assets/{id}/search?q={WORD}"), None)
        .await;
    assert_eq!(s, 200, "{found}");
    let m = &found["matches"][0];
    assert_eq!(m["track"], "fr-1", "{found}");
    let at = m["start"].as_f64().unwrap_or(-1.0);
    assert!((2.0..3.0).contains(&at), "{found}");
    let (s, all) = api.call(Method::GET, &format!("/search?q={WORD}"), None).await;
    assert_eq!(s, 200, "{all}");
    let hits: Vec<&Value> = all["items"].as_array().expect("items").iter().collect();
    assert!(hits.iter().any(|i| i["asset_id"] == id.as_str()), "{all}");

    // Deleted (twice: idempotent): gone from the manifests and from search.
    for _ in 0..2 {
        let r = api
            .req(Method::DELETE, &format!("/assets/{id}/captions/fr-1"))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }
    let (s, list) = api.call(Method::GET, &format!("/assets/{id}/captions"), None).await;
    assert_eq!((s, list["items"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, master) = get(&http, &hls_url).await;
    assert!(subtitle_renditions(&master).is_empty(), "{master}");
    let (_, mpd) = get(&http, &dash_url).await;
    assert!(!mpd.contains("contentType=\"text\""), "{mpd}");
    let (s, all) = api.call(Method::GET, &format!("/search?q={WORD}"), None).await;
    assert_eq!((s, all["items"].as_array().map(Vec::len)), (200, Some(0)), "{all}");
    let (s, gone) = api
        .call(Method::GET, &format!("/assets/{id}/search?q={WORD}"), None)
        .await;
    assert_eq!(s, 404, "{gone}");
    let (s, _) = api
        .call(Method::GET, &format!("/assets/{id}/captions/fr-1"), None)
        .await;
    assert_eq!(s, 404);
    finish(stack).await;
}
