//! Mezzanine breadth (issue 14): the containers broadcast, studios and podcasters hand over — interlaced MPEG-TS
//! with AC-3 (deinterlaced), MXF with MPEG-2 4:2:2 and PCM, AVI with MJPEG and PCM, MP3 and FLAC alone — made by
//! ffmpeg, uploaded, probed by the ingest function's libavformat prober, encoded with the `tiny` preset and judged
//! by ffprobe frame by frame; formats and codecs the platform does not take are refused with their names.
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
