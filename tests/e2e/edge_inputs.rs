//! Edge inputs a user uploads, each encoded with the `tiny` preset end to end and judged by ffprobe: odd
//! dimensions without audio, a clip shorter than one segment, mono 44.1 kHz audio, 5.1 audio, rotation metadata
//! (portrait renditions whose pixels match the source as displayed), non-square pixels, a long clip in many
//! chunks, variable frame rate, and audio only (streamed as audio-only HLS and DASH).
use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Expected video frames of every rendition and audio channels of the output (None = no audio).
    frames: u64,
    audio_channels: Option<u64>,
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_inputs_encode_to_playable_renditions() {
    let stack = vod_local::LocalStack::start(options("edges")).await.expect("stack");
    let api = Api::new(&stack);
    let dir = scratch("edges");
    let cases = [
        Case {
            name: "odd-size-no-audio.mp4",
            args: args("-f lavfi -i testsrc2=size=321x241:rate=25 -t 2 -c:v libx264 -pix_fmt yuv420p"),
            frames: 50,
            audio_channels: None,
        },
        Case {
            name: "shorter-than-a-segment.mp4",
            args: args(
                "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=300:sample_rate=48000 \
                 -t 0.6 -c:v libx264 -pix_fmt yuv420p -c:a aac -ac 2 -shortest",
            ),
            frames: 15,
            audio_channels: Some(2),
        },
        Case {
            name: "mono-44k.mp4",
            args: args(
                "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=500:sample_rate=44100 \
                 -t 3 -c:v libx264 -pix_fmt yuv420p -c:a aac -ac 1 -shortest",
            ),
            frames: 75,
            audio_channels: Some(1),
        },
        Case {
            name: "surround-5-1.mp4",
            args: args(
                "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=700:sample_rate=48000 \
                 -t 2 -c:v libx264 -pix_fmt yuv420p -c:a aac -ac 6 -shortest",
            ),
            frames: 50,
            audio_channels: Some(2),
        },
        Case {
            name: "rotated-90.mp4",
            args: args("-f lavfi -i testsrc2=size=320x240:rate=25 -t 2 -c:v libx264 -pix_fmt yuv420p"),
            frames: 50,
            audio_channels: None,
        },
        Case {
            name: "anamorphic-4-3-pixels.mp4",
            args: args("-f lavfi -i testsrc2=size=320x240:rate=25 -t 2 -vf setsar=4/3 -c:v libx264 -pix_fmt yuv420p"),
            frames: 50,
            audio_channels: None,
        },
        Case {
            name: "long-many-chunks.mp4",
            args: args(
                "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=600:sample_rate=48000 \
                 -t 24 -c:v libx264 -pix_fmt yuv420p -c:a aac -ac 2 -shortest",
            ),
            frames: 600,
            audio_channels: Some(2),
        },
        Case {
            name: "variable-frame-rate.mkv",
            args: args(
                "-f lavfi -i testsrc2=size=320x240:rate=30 -t 3 -vf select='not(mod(n\\,3))+lt(n\\,30)' \
                 -vsync vfr -c:v libx264 -pix_fmt yuv420p",
            ),
            frames: 0,
            audio_channels: None,
        },
    ];
    let mut assets = Vec::new();
    for c in &cases {
        let mut file: PathBuf = ffmpeg(
            &c.args.iter().map(String::as_str).collect::<Vec<_>>(),
            &dir.join(format!("raw-{}", c.name)),
        );
        if c.name.starts_with("rotated") {
            // A phone's portrait clip: landscape pixels with a 90° display matrix (written on stream copy).
            let src = file.to_str().expect("path").to_string();
            file = ffmpeg(
                &["-i", &src, "-c", "copy", "-metadata:s:v:0", "rotate=90"],
                &dir.join(c.name),
            );
        } else {
            std::fs::rename(&file, dir.join(c.name)).expect("rename");
            file = dir.join(c.name);
        }
        let a = api.upload(&file).await.expect("upload");
        assets.push(a["id"].as_str().expect("id").to_string());
    }
    let mut jobs = Vec::new();
    for (c, id) in cases.iter().zip(&assets) {
        let a = api.wait_final(id).await;
        assert_eq!(a["state"], "Probed", "{}: {a}", c.name);
        let (s, job) = api
            .call(
                Method::POST,
                &format!("/assets/{id}/jobs"),
                Some(json!({"preset": "tiny"})),
            )
            .await;
        assert_eq!(s, 201, "{}: {job}", c.name);
        if c.name.starts_with("long") {
            assert!(
                job["tasks_total"].as_u64() >= Some(12),
                "{}: many chunks: {job}",
                c.name
            );
        }
        jobs.push(job["id"].as_str().expect("job").to_string());
    }
    for ((c, id), job) in cases.iter().zip(&assets).zip(&jobs) {
        let done = wait_job(&api, job, 600).await;
        assert_eq!(done["state"], "Finished", "{}: {done}", c.name);
        let (_, a) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
        let src_dur = a["media"]["duration_secs"].as_f64().unwrap_or(0.0);
        let out = &a["output"];
        let bucket = out["bucket"].as_str().expect("bucket");
        for r in out["renditions"].as_array().expect("renditions") {
            let (w, h) = (r["width"].as_u64().unwrap_or(1), r["height"].as_u64().unwrap_or(1));
            assert!(w % 2 == 0 && h % 2 == 0, "{}: even rendition size {w}x{h}", c.name);
            let (file, p) = rendition_file(&stack, &dir, bucket, r, c.name).await;
            let v = stream(&p, "video").expect("video");
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(w), Some(h)),
                "{}",
                c.name
            );
            let frames: u64 = v["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
            if c.frames > 0 {
                assert_eq!(frames, c.frames, "{}: every frame", c.name);
            } else {
                assert!(frames > 0, "{}: frames decoded", c.name);
            }
            if c.name.starts_with("anamorphic") {
                // 320×240 storage with 4:3 pixels displays at 16:9: square-pixel renditions at 16:9.
                assert!((w as f64 / h as f64 - 16.0 / 9.0).abs() < 0.03, "{}: {w}x{h}", c.name);
                let q = psnr(&file, &dir.join(c.name), w, h);
                assert!(q > 25.0, "{}: PSNR {q:.1} dB", c.name);
            }
            if c.name.starts_with("rotated") {
                assert!(h > w, "{}: portrait renditions for a portrait display: {w}x{h}", c.name);
                let q = psnr(&file, &dir.join(c.name), w, h);
                assert!(
                    q > 25.0,
                    "{}: PSNR {q:.1} dB against the source as displayed (rotated)",
                    c.name
                );
            }
            let vd: f64 = v["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
            assert!(
                (vd - src_dur).abs() <= 0.1,
                "{}: duration {vd} vs source {src_dur}",
                c.name
            );
            match (c.audio_channels, stream(&p, "audio")) {
                (None, None) => {}
                (Some(ch), Some(a)) => {
                    assert_eq!(a["codec_name"], "opus", "{}", c.name);
                    assert_eq!(a["channels"].as_u64(), Some(ch), "{}: channels", c.name);
                    let ad: f64 = a["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
                    assert!((ad - vd).abs() <= 0.1, "{}: audio {ad} s vs video {vd} s", c.name);
                }
                (want, got) => panic!("{}: audio {want:?} but output has {got:?}", c.name),
            }
        }
    }
    // Audio only (an M4A): an audio job, no video rungs; the asset streams as audio-only HLS and DASH.
    let m4a = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "3",
            "-c:a",
            "aac",
            "-ac",
            "2",
        ],
        &dir.join("audio-only.m4a"),
    );
    let a = api.upload(&m4a).await.expect("upload");
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(api.wait_final(&id).await["state"], "Probed");
    let job = api.start_job(&id, "tiny").await;
    assert_eq!(job["tasks_total"], 1, "one audio task: {job}");
    let done = wait_job(&api, job["id"].as_str().expect("job"), 300).await;
    assert_eq!(done["state"], "Finished", "{done}");
    let (_, a) = api.call(Method::GET, &format!("/assets/{id}"), None).await;
    assert_eq!(a["state"], "Ready");
    assert_eq!(a["output"]["renditions"].as_array().map(Vec::len), Some(0));
    assert_eq!(a["output"]["audio"][0]["codecs"], "opus", "{a}");
    let loc = api.locator(json!({"asset": id, "kind": "streaming"})).await;
    for url in [
        loc["urls"]["hls"].as_str().expect("hls"),
        loc["urls"]["dash"].as_str().expect("dash"),
    ] {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-show_format", "-of", "json", url])
            .output()
            .expect("ffprobe");
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
        let p: Value = serde_json::from_slice(&out.stdout).expect("json");
        let audio = stream(&p, "audio").expect("audio stream");
        assert_eq!(audio["codec_name"], "opus", "{url}");
        assert!(stream(&p, "video").is_none(), "{url}: audio only");
        let d: f64 = p["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        assert!((d - 3.0).abs() < 0.15, "{url}: duration {d}");
    }
    finish(stack).await;
}
