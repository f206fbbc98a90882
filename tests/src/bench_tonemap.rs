//! `vod-bench-tonemap`: what tone mapping HDR costs the SDR renditions of an HDR source, in one run on this
//! machine, and writes `bench/tonemap-report.md` (+ `.json`). Two 1080p 10-bit HEVC sources carry the same pixels,
//! one tagged BT.2020 PQ (HDR10: its H.264 rung is tone-mapped), the other BT.709 (no tone mapping); each is encoded
//! to one 1080p H.264 rung (x264 veryfast, one thread), taking turns, the least CPU time of [`REPS`] rounds kept.
//! The difference is the tone mapper's (converting to 10-bit 4:2:0 and mapping, once per frame for all SDR rungs),
//! in CPU time: its bands of rows on several threads cut the wall time, not the work.
//!
//! Usage: `cargo run -p vod-e2e --bin vod-bench-tonemap` (media crates are optimised in every profile).
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "bench_common.rs"]
#[allow(dead_code)] // shared with the encode benchmarks; this one uses part of it
mod common;
use common::cpu_seconds;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vod_encode::{encode_video_chunk, Rung, VideoChunkRequest, VideoCodec, X264Preset};

const SECS: u32 = 2;
const FPS: (u32, u32) = (25, 1);
const REPS: usize = 3;
/// The stated limit: the tone-mapped encode costs at most this much more CPU than the plain one.
const LIMIT: f64 = 1.5;

/// 2 s of testsrc2 at 1920×1080 as 10-bit HEVC, tagged with `transfer` (`smpte2084` or `bt709`).
fn source(dir: &Path, name: &str, transfer: &str) -> Result<PathBuf> {
    let out = dir.join(name);
    if out.exists() {
        return Ok(out);
    }
    let primaries = if transfer == "smpte2084" { "bt2020" } else { "bt709" };
    let matrix = if transfer == "smpte2084" { "bt2020nc" } else { "bt709" };
    let ok = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
        ])
        .args([
            "-t",
            &SECS.to_string(),
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
        ])
        .args(["-x265-params", "log-level=error"])
        .args([
            "-color_primaries",
            primaries,
            "-color_trc",
            transfer,
            "-colorspace",
            matrix,
        ])
        .arg(&out)
        .status()?
        .success();
    if !ok {
        bail!("ffmpeg failed");
    }
    Ok(out)
}

/// CPU seconds of encoding `source` to one 1080p H.264 rung.
fn encode(source: &Path) -> Result<f64> {
    let rungs = [Rung {
        name: "1080p-h264".into(),
        width: 1920,
        height: 1080,
        bitrate_kbps: 6000,
        codec: VideoCodec::H264 {
            preset: X264Preset::Veryfast,
        },
    }];
    let req = VideoChunkRequest {
        rotation: 0,
        source: common::source_file(source)?,
        frame_rate: FPS,
        segment_duration: f64::from(SECS),
        first_segment: 0,
        end_segment: 1,
        total_frames: u64::from(SECS * FPS.0),
        rungs: &rungs,
        threads: 1,
    };
    let before = cpu_seconds(libc::RUSAGE_SELF);
    encode_video_chunk(&req)?.into_iter().next().context("no rendition")?;
    Ok(cpu_seconds(libc::RUSAGE_SELF) - before)
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(".build/bench");
    std::fs::create_dir_all(&dir)?;
    let hdr = source(&dir, "pq-1080p.mkv", "smpte2084")?;
    let sdr = source(&dir, "bt709-1080p-10bit.mkv", "bt709")?;
    let (mut plain, mut mapped) = (f64::MAX, f64::MAX);
    for _ in 0..REPS {
        plain = plain.min(encode(&sdr)?);
        mapped = mapped.min(encode(&hdr)?);
    }
    let frames = f64::from(SECS * FPS.0);
    let per_frame_ms = (mapped - plain).max(0.0) * 1000.0 / frames;
    let ratio = mapped / plain;
    let report = json!({
        "frames": frames, "plain_cpu_s": plain, "tone_mapped_cpu_s": mapped,
        "tone_map_ms_per_frame": per_frame_ms, "ratio": ratio, "limit": LIMIT,
    });
    let md = format!(
        "# Tone mapping benchmark\n\nOne run on this machine. {SECS} s of 1920×1080 25 fps testsrc2 as 10-bit HEVC, \
         tagged BT.2020 PQ (its SDR rendition is tone-mapped) or BT.709 (not), each encoded to one 1080p H.264 rung \
         (x264 veryfast, 6000 kb/s, one thread); the least CPU time of {REPS} rounds taking turns.\n\n\
         | measure | value |\n|---|---:|\n\
         | encode CPU, BT.709 source (s) | {plain:.2} |\n\
         | encode CPU, PQ source, tone-mapped (s) | {mapped:.2} |\n\
         | tone mapping per 1080p frame (ms) | {per_frame_ms:.1} |\n\
         | **tone-mapped ÷ plain CPU** (limit ≤ {LIMIT}) | **{ratio:.2}** |\n"
    );
    let out = root.join("bench");
    std::fs::write(out.join("tonemap-report.md"), md)?;
    std::fs::write(out.join("tonemap-report.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("{report}");
    if ratio > LIMIT {
        bail!("tone mapping costs {ratio:.2}× the plain encode (limit {LIMIT})");
    }
    Ok(())
}
