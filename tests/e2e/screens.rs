//! Every screen: a preset with an AV1 and an H.264 ladder and Opus and AAC-LC audio ("tiny-avc"), played where
//! neither AV1 nor Opus can be decoded. The manifests offer a complete ladder per codec (HLS variants with exact
//! CODECS for each video rendition with each AUDIO group, one DASH AdaptationSet per video codec family and per
//! audio codec); ffmpeg decodes every frame of each H.264 and AV1 rendition over HLS, and both audio tracks put every
//! burst of the source where it is; each download pairs H.264 with AAC and AV1 with Opus; hls.js, dash.js and
//! shaka-player in headless Chromium that reports `av01` and `opus` unsupported play H.264 + AAC, and with
//! everything allowed they still play; the same for the encrypted asset (AES-128 HLS, cenc and cbcs with Clear
//! Key).
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_renditions_play_where_av1_cannot() {
    let stack = stack_with("screens", &[("ManifestTtlSeconds", "1")]).await;
    let api = Api::new(&stack);
    let dir = scratch("screens");
    // testsrc2 and a burst of 1 kHz every second from 0.5 s, H.264 + AAC.
    let mut args: Vec<String> = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
        .map(String::from)
        .to_vec();
    args.extend(vod_testkit::burst_args(5.0, 48_000));
    args.extend(
        [
            "-t", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        ]
        .map(String::from),
    );
    let source = ffmpeg(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.join("clip.mp4"),
    );
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
    let audio: Vec<(String, String)> = ready["output"]["audio"]
        .as_array()
        .expect("audio renditions")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").into(),
                a["codecs"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        audio,
        [
            ("audio".to_string(), "opus".to_string()),
            ("audio-aac".into(), "mp4a.40.2".into())
        ],
        "{ready}"
    );

    // HLS: a variant per rendition and audio group with its own exact CODECS; both ladders complete with each.
    let master = text(hls.clone()).await;
    for (group, audio_codecs) in [("audio", "opus"), ("audio-aac", "mp4a.40.2")] {
        assert!(
            master.contains(&format!("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{group}\"")),
            "{master}"
        );
        for name in ["180p", "120p", "180p-h264", "120p-h264"] {
            let codecs = codecs_of(name);
            assert!(
                master.lines().zip(master.lines().skip(1)).any(|(inf, uri)| inf
                    .contains(&format!("CODECS=\"{codecs},{audio_codecs}\""))
                    && inf.contains(&format!("AUDIO=\"{group}\""))
                    && uri.contains(&format!("{name}/"))),
                "{name} variant with CODECS {codecs},{audio_codecs}: {master}"
            );
        }
    }
    // I-frame playlists: a variant per video rendition; an entry per key frame (one per 1 s segment), each entry's
    // byte range alone (with the init segment) decodes to exactly one key frame. (ffmpeg's HLS demuxer reads
    // byte ranges as one stream, so it cannot play clear I-frame playlists; the encrypted ones below it plays.)
    for name in ["180p", "120p", "180p-h264", "120p-h264"] {
        assert!(
            master.contains(&format!("CODECS=\"{}\"", codecs_of(name)))
                && master
                    .lines()
                    .any(|l| l.starts_with("#EXT-X-I-FRAME-STREAM-INF:")
                        && l.contains(&format!("/{name}/iframes.m3u8\""))),
            "{name} I-frame variant: {master}"
        );
    }
    let ism_url = loc["urls"]["hls_cmaf"]
        .as_str()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(a, _)| a.to_string())
        .expect("ism");
    for name in ["180p", "180p-h264"] {
        let playlist = text(format!("{ism_url}/{name}/iframes.m3u8")).await;
        assert!(playlist.contains("#EXT-X-I-FRAMES-ONLY\n"), "{playlist}");
        let entries: Vec<(u64, String)> = playlist
            .lines()
            .zip(playlist.lines().skip(1))
            .filter_map(|(range, uri)| {
                let len = range
                    .strip_prefix("#EXT-X-BYTERANGE:")?
                    .strip_suffix("@0")?
                    .parse()
                    .ok()?;
                Some((len, uri.to_string()))
            })
            .collect();
        let key_frames = ffprobe(&["-show_entries", "packet=flags", &format!("{ism_url}/{name}/media.m3u8")])
            ["packets"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(
            (entries.len(), key_frames),
            (5, 5),
            "{name}: entries = key frames: {playlist}"
        );
        let init = http
            .get(format!("{ism_url}/{name}/init.mp4"))
            .send()
            .await
            .expect("init")
            .bytes()
            .await
            .expect("init bytes");
        for (i, (len, uri)) in entries.iter().enumerate() {
            let r = http
                .get(format!("{ism_url}/{name}/{uri}"))
                .header("range", format!("bytes=0-{}", len - 1))
                .send()
                .await
                .expect("range");
            assert_eq!(r.status(), 206, "{name} entry {i}");
            let bytes = r.bytes().await.expect("entry bytes");
            assert_eq!(bytes.len() as u64, *len, "{name} entry {i}");
            let file = dir.join(format!("{name}-iframe-{i}.mp4"));
            std::fs::write(&file, [init.as_ref(), bytes.as_ref()].concat()).expect("write");
            let frames = ffprobe(&["-show_entries", "frame=key_frame", &file.to_string_lossy()]);
            let keys: Vec<&Value> = frames["frames"]
                .as_array()
                .map(|f| f.iter().collect())
                .unwrap_or_default();
            assert_eq!(keys.len(), 1, "{name} entry {i} decodes to one frame: {frames}");
            assert_eq!(keys[0]["key_frame"], 1, "{name} entry {i}: a key frame");
        }
    }

    // DASH: one video AdaptationSet per codec family, one audio AdaptationSet per codec.
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
    let audio_sets: Vec<&str> = mpd
        .split("<AdaptationSet ")
        .filter(|s| s.contains("contentType=\"audio\""))
        .collect();
    assert_eq!(audio_sets.len(), 2, "{mpd}");
    assert!(audio_sets.iter().any(|s| s.contains("codecs=\"opus\"")), "{mpd}");
    assert!(audio_sets.iter().any(|s| s.contains("codecs=\"mp4a.40.2\"")), "{mpd}");

    // ffmpeg decodes every frame of each H.264 and AV1 rendition (5 s at 25 fps), close to the scaled source.
    let ism = loc["urls"]["hls_cmaf"]
        .as_str()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(a, _)| a.to_string())
        .expect("ism");
    for (name, codec, w, h) in [
        ("180p-h264", "h264", 240, 180),
        ("120p-h264", "h264", 160, 120),
        ("180p", "av1", 240, 180),
        ("120p", "av1", 160, 120),
    ] {
        let url = format!("{ism}/{name}/media.m3u8");
        let p = ffprobe(&["-count_frames", "-show_streams", &url]);
        let v = stream(&p, "video").unwrap_or_else(|| panic!("{name}: {p}"));
        assert_eq!(v["codec_name"], codec, "{name}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(w), Some(h)),
            "{name}"
        );
        assert_eq!(v["nb_read_frames"], "125", "{name}: every frame");
        let db = psnr(std::path::Path::new(&url), &source, w, h);
        assert!(db > 28.0, "{name}: PSNR {db}");
    }

    // Both audio tracks over HLS, decoded as presented (AAC's priming trimmed by its edit list, Opus's pre-skip):
    // the whole 5 s, and every burst where the source has it (within 1 ms).
    let expected: Vec<usize> = (0..5).map(|k| 24_000 + k * 48_000).collect();
    for track in ["audio", "audio-aac"] {
        let url = format!("{ism}/{track}/media.m3u8");
        let pcm = vod_testkit::presented_pcm(&url, &[]);
        let at = vod_testkit::onsets(&pcm);
        assert!(
            pcm.len().abs_diff(240_000) <= 1024,
            "{track}: {} samples for 5 s",
            pcm.len()
        );
        assert_eq!(at.len(), expected.len(), "{track} bursts at {at:?}");
        for (got, want) in at.iter().zip(&expected) {
            assert!(
                got.abs_diff(*want) <= 48,
                "{track}: a burst at {got}, the source's at {want}"
            );
        }
    }

    // Downloads: each codec's progressive MP4, H.264 with AAC and AV1 with Opus.
    let dl = api.locator(json!({"asset": id, "kind": "download"})).await;
    let downloads = dl["downloads"].as_array().expect("downloads").clone();
    assert_eq!(downloads.len(), 4, "{dl}");
    for d in &downloads {
        let (name, url) = (d["rendition"].as_str().unwrap_or(""), d["url"].as_str().unwrap_or(""));
        let p = ffprobe(&["-count_frames", "-show_streams", url]);
        let (v, a) = (stream(&p, "video"), stream(&p, "audio"));
        let want = if name.ends_with("-h264") {
            ("h264", "aac")
        } else {
            ("av1", "opus")
        };
        assert_eq!(
            (v.map(|v| &v["codec_name"]), a.map(|a| &a["codec_name"])),
            (Some(&json!(want.0)), Some(&json!(want.1))),
            "{name}: {p}"
        );
        assert_eq!(v.map(|v| &v["nb_read_frames"]), Some(&json!("125")), "{name}");
    }

    // Thumbnails: sprite sheets and their WebVTT index agree (tiles, sizes, times covering the title), the poster
    // decodes, DASH has an image AdaptationSet, and the player page's seek bar previews the tile under the pointer.
    let t = &ready["output"]["thumbnails"];
    assert_eq!(
        (&t["count"], &t["width"], &t["height"], &t["columns"], &t["rows"]),
        (&json!(5), &json!(96), &json!(72), &json!(2), &json!(2)),
        "one tile a second of the 5 s title, 96 wide at 4:3, 2×2 per sheet: {t}"
    );
    let vtt_url = loc["urls"]["thumbnails"].as_str().expect("thumbnails url").to_string();
    let vtt = text(vtt_url.clone()).await;
    let cues: Vec<(String, String, String, [u64; 4])> = vtt
        .split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines();
            let (start, end) = lines.next()?.split_once(" --> ")?;
            let (sheet, xywh) = lines.next()?.split_once("#xywh=")?;
            let v: Vec<u64> = xywh.split(',').filter_map(|n| n.parse().ok()).collect();
            Some((start.into(), end.into(), sheet.into(), [v[0], v[1], v[2], v[3]]))
        })
        .collect();
    assert_eq!(cues.len(), 5, "a cue per tile: {vtt}");
    assert_eq!(cues[0].0, "00:00:00.000", "{vtt}");
    assert_eq!(cues[4].1, "00:00:05.000", "the cues cover the title: {vtt}");
    assert!(cues.windows(2).all(|w| w[0].1 == w[1].0), "contiguous cues: {vtt}");
    let sheet_base = vtt_url.rsplit_once('/').map(|(a, _)| a.to_string()).expect("base");
    let mut sheets_seen = std::collections::BTreeMap::new();
    for (i, (_, _, sheet, [x, y, w, h])) in cues.iter().enumerate() {
        assert_eq!((*w, *h), (96, 72), "tile {i}");
        assert_eq!(sheet, &format!("sheet-{:05}.jpg", i / 4), "tile {i} is on its sheet");
        assert_eq!(
            (*x, *y),
            ((i as u64 % 2) * 96, (i as u64 % 4 / 2) * 72),
            "tile {i} row by row"
        );
        if !sheets_seen.contains_key(sheet) {
            let file = dir.join(sheet);
            let bytes = http.get(format!("{sheet_base}/{sheet}")).send().await.expect("sheet");
            assert_eq!(bytes.status(), 200, "{sheet}");
            std::fs::write(&file, bytes.bytes().await.expect("sheet bytes")).expect("write");
            let p = ffprobe(&["-count_frames", "-show_streams", &file.to_string_lossy()]);
            let v = stream(&p, "video").unwrap_or_else(|| panic!("{sheet}: {p}"));
            sheets_seen.insert(sheet.clone(), (v["width"].as_u64(), v["height"].as_u64()));
        }
    }
    assert_eq!(
        sheets_seen.values().collect::<Vec<_>>(),
        [&(Some(192), Some(144)), &(Some(192), Some(144))],
        "two 2×2 sheets of 96×72 tiles"
    );
    let poster = dir.join("poster.jpg");
    let url = loc["urls"]["poster"].as_str().expect("poster url");
    std::fs::write(
        &poster,
        http.get(url)
            .send()
            .await
            .expect("poster")
            .bytes()
            .await
            .expect("bytes"),
    )
    .expect("write");
    let p = ffprobe(&["-count_frames", "-show_streams", &poster.to_string_lossy()]);
    let v = stream(&p, "video").unwrap_or_else(|| panic!("poster: {p}"));
    assert_eq!(
        (
            &v["codec_name"],
            v["width"].as_u64(),
            v["height"].as_u64(),
            &v["nb_read_frames"]
        ),
        (&json!("mjpeg"), Some(320), Some(240), &json!("1")),
        "the poster decodes at the source's size"
    );
    assert!(
        mpd.contains("contentType=\"image\"")
            && mpd.contains("schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"2x2\""),
        "{mpd}"
    );
    let r = play_with(
        "hls",
        &hls,
        None,
        None,
        &["--thumbnails", &vtt_url, "--thumbnail-at", "0.7"],
    );
    let preview = &r["preview"];
    assert!(
        preview["url"].as_str().is_some_and(|u| u.ends_with("/sheet-00000.jpg"))
            && (&preview["x"], &preview["y"], &preview["loaded"]) == (&json!(96), &json!(72), &json!(true)),
        "the seek bar at 70 % (3.5 s) previews tile 3, on sheet 0 at (96, 72): {r}"
    );

    // Players on a device without AV1 and Opus decoders get H.264 + AAC; with both allowed they still play.
    let fed = |r: &Value| -> Vec<String> {
        r["sourceBuffers"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    for (player, src) in [("hls", &hls), ("dash", &dash), ("shaka", &dash)] {
        let r = play_with(player, src, None, None, &["--no-av1", "--no-opus"]);
        let buffers = fed(&r);
        assert!(
            buffers.iter().any(|t| t.contains("avc1")) && buffers.iter().any(|t| t.contains("mp4a.40.2")),
            "{player} without AV1 and Opus fed H.264 and AAC: {r}"
        );
        assert!(
            !buffers.iter().any(|t| t.contains("av01") || t.contains("opus")),
            "{player} without AV1 and Opus: {r}"
        );
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
    // Encrypted I-frame playlists: each entry is its key frame alone, AES-128 encrypted; ffmpeg fetches the key
    // and decodes every one.
    for name in ["180p", "180p-h264"] {
        let url = format!("{ism_url}/{name}/iframes.m3u8");
        let playlist = text(url.clone()).await;
        assert!(
            playlist.contains("METHOD=AES-128") && playlist.contains("aes128/key-00004.m4s"),
            "{playlist}"
        );
        let p = ffprobe(&["-count_frames", "-show_streams", &url]);
        assert_eq!(
            stream(&p, "video").map(|v| &v["nb_read_frames"]),
            Some(&json!("5")),
            "{name} encrypted I-frames: {p}"
        );
    }
    let mpd = text(dash.clone()).await;
    assert!(mpd.contains("value=\"cenc\"") && mpd.contains("avc1.64"), "{mpd}");
    for (player, src, lic) in [
        ("hls", &hls, None),
        ("dash", &dash, Some(licence.as_str())),
        ("shaka", &dash, Some(licence.as_str())),
    ] {
        let r = play_with(player, src, None, lic, &["--no-av1", "--no-opus"]);
        assert!(
            fed(&r).iter().any(|t| t.contains("avc1")) && fed(&r).iter().any(|t| t.contains("mp4a")),
            "{player} encrypted without AV1 and Opus: {r}"
        );
    }
    set_policies(json!([
        {"protocols": ["dash"], "protection": "cbcs", "key_policy": "screens-open", "drm": [{"system": "clearkey"}]}
    ]))
    .await;
    let mpd = text(dash.clone()).await;
    assert!(mpd.contains("value=\"cbcs\""), "{mpd}");
    let r = play_with("shaka", &dash, None, Some(&licence), &["--no-av1", "--no-opus"]);
    assert!(
        fed(&r).iter().any(|t| t.contains("avc1")) && fed(&r).iter().any(|t| t.contains("mp4a")),
        "shaka cbcs without AV1 and Opus: {r}"
    );
    finish(stack).await;
}
