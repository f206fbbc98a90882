//! Mezzanine breadth (issue 14): the containers broadcast, studios and podcasters hand over — interlaced MPEG-TS
//! with AC-3 (deinterlaced), MXF with MPEG-2 4:2:2 and PCM, AVI with MJPEG and PCM, MP3 and FLAC alone — made by
//! ffmpeg, uploaded, probed by the ingest function's libavformat prober, encoded with the `tiny` preset and judged
//! by ffprobe frame by frame; formats and codecs the platform does not take are refused with their names. A film
//! in MKV with audio in two languages and an SRT sidecar: a rendition per language (each its own source track),
//! listed in HLS and DASH and offered and switched by hls.js, dash.js and shaka with the subtitles, the sidecar's
//! word found by search; MXF mono PCM pairs made stereo by a preset. A 10-bit HDR10 HEVC master: 10-bit AV1 with
//! its colour and HDR10 metadata, tone-mapped 8-bit H.264.
use reqwest::Method;
use serde_json::Value;

use crate::support::*;

struct Case {
    name: &'static str,
    args: &'static str,
    container: &'static str,
    /// Video frames every rendition must have (0: audio only).
    frames: u64,
    /// Audio channels of the output.
    channels: u64,
    secs: f64,
}

fn split(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// ffmpeg's interlace detector (`idet`) over a file: frames it finds interlaced (TFF + BFF) and progressive, by its
/// multi-frame detection. Our combing metric: a deinterlaced rendition has at most one combed frame in ten (the
/// woven frames of the source: all of them).
fn idet(file: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-vf", "idet", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("Multi frame detection:"))
        .unwrap_or_else(|| panic!("no idet summary: {log}"));
    let count = |key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (count("TFF:") + count("BFF:"), count("Progressive:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_legacy_containers_encode_frame_exact() {
    let stack = vod_local::LocalStack::start(options("mezzanine")).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("mezzanine");
    let av = "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3";
    let cases = [
        Case {
            // A broadcast capture: interlaced H.264 (top field first, each field a 50 Hz moment) and AC-3.
            name: "capture.ts",
            args: "-vf tinterlace=mode=interleave_top -c:v libx264 -flags +ilme+ildct -x264opts tff=1 \
                   -pix_fmt yuv420p -c:a ac3 -ac 2 -shortest",
            container: "mpegts",
            frames: 75,
            channels: 2,
            secs: 3.0,
        },
        Case {
            name: "studio.mxf",
            args: "-c:v mpeg2video -pix_fmt yuv422p -b:v 8M -c:a pcm_s16le -ac 2 -shortest",
            container: "mxf",
            frames: 75,
            channels: 2,
            secs: 3.0,
        },
        Case {
            name: "camera.avi",
            args: "-c:v mjpeg -pix_fmt yuvj420p -c:a pcm_s16le -ac 2 -shortest",
            container: "avi",
            frames: 75,
            channels: 2,
            secs: 3.0,
        },
        Case {
            name: "podcast.mp3",
            args: "-map 1:a -c:a libmp3lame -ac 2",
            container: "mp3",
            frames: 0,
            channels: 2,
            secs: 3.0,
        },
        Case {
            name: "master.flac",
            args: "-map 1:a -c:a flac -ac 2",
            container: "flac",
            frames: 0,
            channels: 2,
            secs: 3.0,
        },
    ];
    let mut assets = Vec::new();
    for c in &cases {
        // The interlaced capture's fields come from a 50 frames/s picture.
        let inputs = if c.name == "capture.ts" {
            // (at the top rung's size, so that the rendition is not scaled: scaling would blur the combs away)
            av.replace("320x240:rate=25", "240x180:rate=50")
        } else {
            av.to_string()
        };
        let mut a = split(&inputs);
        a.extend(split(c.args));
        let file = ffmpeg(&a, &dir.join(c.name));
        let up = api.upload(&file).await.expect("upload");
        assets.push(up["id"].as_str().expect("id").to_string());
    }
    let mut jobs = Vec::new();
    for (c, id) in cases.iter().zip(&assets) {
        let a = api.wait_final(id).await;
        assert_eq!(a["state"], "Probed", "{}: {a}", c.name);
        assert_eq!(a["media"]["container"], c.container, "{}: {a}", c.name);
        if c.name == "capture.ts" {
            assert_eq!(
                a["media"]["video"][0]["field_order"], "tff",
                "interlacing is detected: {a}"
            );
        }
        jobs.push(api.start_job(id, "tiny").await["id"].as_str().expect("job").to_string());
    }
    for ((c, id), job) in cases.iter().zip(&assets).zip(&jobs) {
        let done = wait_job(&api, job, 600).await;
        assert_eq!(done["state"], "Finished", "{}: {done}", c.name);
        let (_, a) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
        let out = &a["output"];
        let bucket = out["bucket"].as_str().expect("bucket");
        let renditions = out["renditions"].as_array().cloned().unwrap_or_default();
        assert_eq!(renditions.is_empty(), c.frames == 0, "{}: {out}", c.name);
        for r in &renditions {
            let (file, p) = rendition_file(&stack, &dir, bucket, r, c.name).await;
            let v = stream(&p, "video").expect("video");
            let frames: u64 = v["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
            assert_eq!(frames, c.frames, "{}: every frame", c.name);
            if c.name == "capture.ts" {
                // Deinterlaced: ffmpeg's interlace detector finds at most one frame in ten combed in the rendition
                // (without deinterlacing: 75 of 75); 25 progressive frames a second out of 50 Hz fields.
                let (interlaced, progressive) = idet(&file);
                eprintln!("idet {}: {interlaced} combed, {progressive} progressive", c.name);
                assert!(
                    interlaced * 10 <= c.frames,
                    "{}: combed frames {interlaced}/{progressive}",
                    c.name
                );
                let (src_interlaced, _) = idet(&dir.join(c.name));
                assert!(
                    src_interlaced * 2 >= c.frames,
                    "the source is interlaced: {src_interlaced}"
                );
                assert_eq!(v["avg_frame_rate"], "25/1", "{}", c.name);
            }
            let audio = stream(&p, "audio").expect("audio");
            assert_eq!(audio["channels"].as_u64(), Some(c.channels), "{}", c.name);
            let d: f64 = audio["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
            assert!((d - c.secs).abs() <= 0.1, "{}: audio lasts {d} s", c.name);
        }
        if c.frames == 0 {
            let audio = &out["audio"][0];
            assert_eq!(audio["channels"].as_u64(), Some(c.channels), "{}: {out}", c.name);
            let loc = api.locator(serde_json::json!({"asset": id, "kind": "streaming"})).await;
            let url = loc["urls"]["hls"].as_str().expect("hls");
            let p = ffprobe(&["-show_streams", "-show_format", url]);
            assert!(stream(&p, "video").is_none(), "{}: audio only", c.name);
            let d: f64 = p["format"]["duration"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            assert!((d - c.secs).abs() <= 0.15, "{}: {d} s over HLS", c.name);
        }
    }

    // Refused by name: a container libavformat knows but the platform does not take, and a codec it does not.
    let nut = {
        let mut a = split(av);
        a.extend(split("-c:v ffv1 -c:a pcm_s16le -shortest"));
        ffmpeg(&a, &dir.join("archive.nut"))
    };
    let up = api.upload(&nut).await.expect("upload");
    let a = api.wait_final(up["id"].as_str().expect("id")).await;
    assert_eq!(a["state"], "Error", "{a}");
    let reason = a["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("(nut)") && reason.contains("not an accepted container"),
        "{reason}"
    );
    let cinepak = {
        let mut a = split(av);
        a.extend(split("-c:v cinepak -c:a pcm_s16le -shortest"));
        ffmpeg(&a, &dir.join("old.avi"))
    };
    let up = api.upload(&cinepak).await.expect("upload");
    let a: Value = api.wait_final(up["id"].as_str().expect("id")).await;
    assert_eq!(a["state"], "Error", "{a}");
    let reason = a["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("unsupported video codec") && reason.contains("cinepak"),
        "{reason}"
    );
    finish(stack).await;
}

/// The URI of the audio rendition of `language` in a multivariant playlist (the first one, of any group), resolved
/// against the playlist's URL.
fn audio_uri(master_url: &str, master: &str, language: &str, group: &str) -> String {
    let line = master
        .lines()
        .find(|l| {
            l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO")
                && l.contains(&format!("GROUP-ID=\"{group}\""))
                && l.contains(&format!("LANGUAGE=\"{language}\""))
        })
        .unwrap_or_else(|| panic!("no {language} audio in {group}: {master}"));
    let uri = line
        .split("URI=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("URI");
    let base = &master_url[..master_url.rfind('/').expect("a path") + 1];
    format!("{base}{uri}")
}

/// Decodes an audio stream URL to interleaved f32 PCM at 48 kHz in `channels`.
fn decoded_pcm(url: &str, channels: u32) -> Vec<f32> {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            url,
            "-map",
            "0:a:0",
            "-ac",
        ])
        .arg(channels.to_string())
        .args(["-ar", "48000", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The frequency of a mono sine: its upward zero crossings per second.
fn tone_hz(pcm: &[f32]) -> f64 {
    let ups = pcm.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    ups as f64 / (pcm.len() as f64 / 48_000.0)
}

fn channel_rms(pcm: &[f32], channel: usize) -> f64 {
    let x: Vec<f64> = pcm.iter().skip(channel).step_by(2).map(|v| f64::from(*v)).collect();
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_languages_and_sidecar_subtitles_are_offered_and_mono_pairs_become_stereo() {
    let stack = vod_local::LocalStack::start(options("audio-languages"))
        .await
        .expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("audio-languages");
    // A film (MKV): English (440 Hz), French (880 Hz) and an English commentary (660 Hz), each tagged and named.
    let film = ffmpeg(
        &split(
            "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
             -f lavfi -i sine=frequency=880:sample_rate=48000 -f lavfi -i sine=frequency=660:sample_rate=48000 \
             -t 3 -map 0:v -map 1:a -map 2:a -map 3:a -c:v libx264 -pix_fmt yuv420p -c:a aac -ac 2 \
             -metadata:s:a:0 language=eng -metadata:s:a:0 title=English -metadata:s:a:1 language=fre \
             -metadata:s:a:1 title=Français -metadata:s:a:2 language=eng -metadata:s:a:2 title=Commentary",
        ),
        &dir.join("film.mkv"),
    );
    let id = api.upload_id(&film).await;
    let probed = api.wait_final(&id).await;
    let langs: Vec<&str> = probed["media"]["audio"]
        .as_array()
        .expect("audio streams")
        .iter()
        .map(|a| a["language"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(langs, ["en", "fr", "en"], "ISO 639-2 tags as BCP 47: {probed}");
    assert_eq!(probed["media"]["audio"][1]["title"], "Français", "{probed}");
    let job = api.start_job(&id, "tiny-avc").await;
    assert_eq!(
        wait_job(&api, job["id"].as_str().expect("job"), 600).await["state"],
        "Finished"
    );
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    // One rendition per language (the commentary shares English's language) and codec.
    let audio: Vec<(String, String, String)> = asset["output"]["audio"]
        .as_array()
        .expect("audio renditions")
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("-").to_string();
            (s("name"), s("language"), s("label"))
        })
        .collect();
    let expect = |n: &str, l: &str, t: &str| (n.to_string(), l.to_string(), t.to_string());
    assert_eq!(
        audio,
        vec![
            expect("audio", "en", "English"),
            expect("audio-aac", "en", "English"),
            expect("audio-2", "fr", "Français"),
            expect("audio-aac-2", "fr", "Français"),
        ]
    );

    // The film's German subtitles come as an SRT sidecar.
    let srt = "1\n00:00:00,500 --> 00:00:02,500\nDer Zaunkönig singt im Regen\n";
    let (s, track) = api
        .call(
            Method::POST,
            &format!("/assets/{id}/captions"),
            Some(serde_json::json!({"language": "de", "label": "Deutsch", "text": srt})),
        )
        .await;
    assert_eq!(s, 201, "{track}");

    let loc = api.locator(serde_json::json!({"asset": id, "kind": "streaming"})).await;
    let (hls, dash) = (
        loc["urls"]["hls"].as_str().expect("hls").to_string(),
        loc["urls"]["dash"].as_str().expect("dash").to_string(),
    );
    let http = reqwest::Client::new();
    let master = http.get(&hls).send().await.expect("master").text().await.expect("text");
    for line in [
        "TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Deutsch\",LANGUAGE=\"de\"",
        "TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES",
        "TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO",
        "TYPE=AUDIO,GROUP-ID=\"audio-aac\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES",
        "TYPE=AUDIO,GROUP-ID=\"audio-aac\",NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO",
    ] {
        assert!(master.contains(line), "{line}: {master}");
    }
    let mpd = http.get(&dash).send().await.expect("mpd").text().await.expect("text");
    assert_eq!(mpd.matches("contentType=\"audio\"").count(), 4, "{mpd}");
    assert!(
        mpd.contains("lang=\"fr\"") && mpd.contains("<Label>Français</Label>"),
        "{mpd}"
    );
    // Each language carries its own source track: the French renditions are the 880 Hz tone, the English 440 Hz.
    for group in ["audio", "audio-aac"] {
        for (language, hz) in [("en", 440.0), ("fr", 880.0)] {
            let got = tone_hz(&decoded_pcm(&audio_uri(&hls, &master, language, group), 1));
            assert!((got - hz).abs() < 10.0, "{group} {language}: {got} Hz");
        }
    }
    assert!(
        mpd.contains("contentType=\"text\"") && mpd.contains("lang=\"de\""),
        "{mpd}"
    );
    // The players list both audio languages and switch to French while playing, and offer the German subtitles.
    for player in ["hls", "dash", "shaka"] {
        let r = play_with(
            player,
            if player == "hls" { &hls } else { &dash },
            None,
            None,
            &["--audio", "fr"],
        );
        let offered: Vec<&str> = r["tracks"]["audioLanguages"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(offered.contains(&"en") && offered.contains(&"fr"), "{player}: {r}");
        assert_eq!(r["tracks"]["audioActive"], "fr", "{player}: {r}");
        let subtitles = r["tracks"]["textDetails"].to_string();
        assert!(subtitles.contains("\"language\":\"de\""), "{player}: {r}");
    }
    // Caption search finds the sidecar's word, at its cue.
    let (s, found) = api
        .call(Method::GET, &format!("/assets/{id}/search?q=zaunkönig"), None)
        .await;
    assert_eq!(s, 200, "{found}");
    let m = &found["matches"][0];
    let start = m["start"].as_f64().unwrap_or(-1.0);
    assert!(m["track"] == track["id"] && (0.5..2.5).contains(&start), "{found}");

    // Broadcast audio as discrete mono PCM tracks (MXF): a preset pairing mono tracks makes each pair a stereo
    // rendition, the first track on the left and the second on the right.
    let mxf = ffmpeg(
        &split(
            "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
             -f lavfi -i anullsrc=channel_layout=mono:sample_rate=48000 -t 3 -map 0:v -map 1:a -map 2:a -map 2:a \
             -map 1:a -c:v mpeg2video -pix_fmt yuv422p -b:v 8M -c:a pcm_s16le -ac 1",
        ),
        &dir.join("broadcast.mxf"),
    );
    let preset = serde_json::json!({
        "name": "stereo-pairs",
        "ladder": {"kind": "fixed", "rungs": [{"height": 120, "bitrate_kbps": 200, "speed": 10}]},
        "audio": {"bitrate_kbps": 96, "channels": 2, "select": "all", "pair_mono": true},
    });
    let (s, body) = api.call(Method::POST, "/presets", Some(preset)).await;
    assert_eq!(s, 201, "{body}");
    let id = api.upload_id(&mxf).await;
    let probed = api.wait_final(&id).await;
    assert_eq!(probed["media"]["audio"].as_array().map(Vec::len), Some(4), "{probed}");
    let job = api.start_job(&id, "stereo-pairs").await;
    assert_eq!(
        wait_job(&api, job["id"].as_str().expect("job"), 600).await["state"],
        "Finished"
    );
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let names: Vec<&str> = asset["output"]["audio"]
        .as_array()
        .expect("audio")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["audio", "audio-2"], "{asset}");
    let loc = api.locator(serde_json::json!({"asset": id, "kind": "streaming"})).await;
    let hls = loc["urls"]["hls"].as_str().expect("hls").to_string();
    let base = &hls[..hls.rfind('/').expect("path") + 1];
    let master = http.get(&hls).send().await.expect("master").text().await.expect("text");
    let uris: Vec<String> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .filter_map(|l| l.split("URI=\"").nth(1).and_then(|r| r.split('"').next()))
        .map(|u| format!("{base}{u}"))
        .collect();
    assert_eq!(uris.len(), 2, "{master}");
    // Tracks 1+2: tone left, silence right; tracks 3+4: silence left, tone right.
    for (uri, tone_left) in uris.iter().zip([true, false]) {
        let pcm = decoded_pcm(uri, 2);
        let (l, r) = (channel_rms(&pcm, 0), channel_rms(&pcm, 1));
        let (tone, silent) = if tone_left { (l, r) } else { (r, l) };
        assert!(tone > 0.05 && silent < 0.001, "{uri}: left {l}, right {r}");
    }
    finish(stack).await;
}

/// A 10-bit HDR10 HEVC master (BT.2020, PQ, mastering display and light levels in its SEI): the AV1 renditions
/// keep 10 bits, the colour description (`colr`, sequence header, codec string, HLS VIDEO-RANGE=PQ, DASH cicp
/// properties) and the HDR10 metadata (`mdcv`, `clli`, metadata OBUs); the H.264 renditions are 8-bit SDR,
/// tone-mapped; every frame decodes and the players play it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_bit_hdr10_keeps_ten_bits_and_its_colour_in_av1() {
    let stack = vod_local::LocalStack::start(options("hdr10")).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("hdr10");
    let master = ffmpeg(
        &split(
            "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 \
             -c:v libx265 -preset ultrafast -pix_fmt yuv420p10le -x265-params \
             log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:\
             master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400 \
             -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -tag:v hvc1 -c:a aac -shortest",
        ),
        &dir.join("hdr10.mp4"),
    );
    let id = api.encoded(&master, "tiny-avc").await;
    let (_, asset) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    let out = &asset["output"];
    let bucket = out["bucket"].as_str().expect("bucket");
    let renditions = out["renditions"].as_array().cloned().unwrap_or_default();
    assert_eq!(renditions.len(), 4, "{out}");
    for r in &renditions {
        let name = r["name"].as_str().unwrap_or_default();
        let (_, p) = rendition_file(&stack, &dir, bucket, r, "hdr10").await;
        let v = stream(&p, "video").expect("video");
        let frames: u64 = v["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert_eq!(frames, 75, "{name}: every frame");
        if name.ends_with("-h264") {
            assert_eq!(v["pix_fmt"], "yuv420p", "{name}: {v}");
            assert!(r["colour"].is_null(), "{r}");
        } else {
            assert_eq!(v["pix_fmt"], "yuv420p10le", "{name}: {v}");
            assert_eq!(
                (&v["color_primaries"], &v["color_transfer"], &v["color_space"]),
                (&"bt2020".into(), &"smpte2084".into(), &"bt2020nc".into()),
                "{name}: {v}"
            );
            assert_eq!(r["colour"]["transfer"], 16, "{r}");
            // The source's mastering display and light levels, in the `mdcv` and `clli` boxes.
            let side = v["side_data_list"].to_string();
            assert!(
                side.contains("Mastering display metadata") && side.contains("\"max_content\":1000"),
                "{name}: {v}"
            );
            let codecs = r["codecs"].as_str().unwrap_or_default();
            assert!(codecs.ends_with(".10.0.110.09.16.09.0"), "{codecs}");
        }
    }
    let loc = api.locator(serde_json::json!({"asset": id, "kind": "streaming"})).await;
    let (hls, dash) = (
        loc["urls"]["hls"].as_str().expect("hls").to_string(),
        loc["urls"]["dash"].as_str().expect("dash").to_string(),
    );
    let http = reqwest::Client::new();
    let m = http.get(&hls).send().await.expect("master").text().await.expect("text");
    let variants: Vec<&str> = m.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")).collect();
    assert!(!variants.is_empty(), "{m}");
    for v in &variants {
        let want = if v.contains("CODECS=\"av01") {
            "VIDEO-RANGE=PQ"
        } else {
            "VIDEO-RANGE=SDR"
        };
        assert!(v.contains(want), "{v}");
    }
    let mpd = http.get(&dash).send().await.expect("mpd").text().await.expect("text");
    assert!(
        mpd.contains(
            "<SupplementalProperty schemeIdUri=\"urn:mpeg:mpegB:cicp:TransferCharacteristics\" value=\"16\"/>"
        ),
        "{mpd}"
    );
    // ffmpeg decodes the HLS stream; the players play both manifests.
    let p = ffprobe(&["-show_streams", &hls]);
    assert!(stream(&p, "video").is_some(), "{p}");
    play("hls", &hls, None, None);
    play("shaka", &dash, None, None);
    finish(stack).await;
}
