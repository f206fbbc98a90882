//! `vod-bench-rate`: whether renditions keep their bitrate promise, and what each encoder costs, measured in one
//! run on this machine; writes `bench/rate-report.md` (+ `.json`).
//! - rate accuracy: per encoder behind the seam (rav1e, x264), per content kind (easy: testsrc2; hard: testsrc2 under
//!   strong temporal noise; static: colour bars), per rung (360p and 720p at the `adaptive` preset's targets), the
//!   delivered average and largest-segment bitrate against the rung's target, encoded as the platform does (4 s
//!   segments, chunks of at most 8 s, each chunk a separate encode);
//! - encoders: frames per CPU-second (one thread each: per core) and the bitrate each needs for a common PSNR
//!   (interpolated from three targets), rav1e and x264 through the seam, SVT-AV1 through the ffmpeg CLI as a peer.
//!
//! Usage: `cargo run -p vod-e2e --bin vod-bench-rate` (media crates are optimised in every profile).
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "bench_common.rs"]
mod common;
use common::{cpu_seconds, write_mp4};

use anyhow::{bail, Context, Result};
use serde_json::json;
use vod_encode::{encode_video_chunk, RenditionChunk, Rung, VideoChunkRequest, VideoCodec, X264Preset};

const FPS: u32 = 30;
/// Rate accuracy: 12 s sources, 4 s segments, chunks of two segments (as `adaptive` plans them).
const RATE_SECS: u32 = 12;
const SEGMENT: f64 = 4.0;
const CHUNK_SEGMENTS: u32 = 2;
/// Encoder comparison: 6 s at 360p.
const CMP_SECS: u32 = 6;

/// The content kinds: name and lavfi source graph (1280x720 at 30 fps).
const CONTENT: &[(&str, &str)] = &[
    ("easy", "testsrc2=size=1280x720:rate=30"),
    ("hard", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t+u"),
    ("static", "smptebars=size=1280x720:rate=30"),
];

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A near-lossless mezzanine of a content kind (x264 CRF 10, so its own artefacts do not count).
fn source(dir: &Path, kind: &str, graph: &str, secs: u32) -> Result<PathBuf> {
    let path = dir.join(format!("rate-{kind}-{secs}s.mp4"));
    if !path.exists() {
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph])
            .args([
                "-t",
                &secs.to_string(),
                "-c:v",
                "libx264",
                "-crf",
                "10",
                "-preset",
                "veryfast",
            ])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&path))?;
    }
    Ok(path)
}

/// Encodes the whole source in the platform's chunks; returns the chunks (in order).
fn encode(src: &Path, secs: u32, rung: &Rung) -> Result<Vec<RenditionChunk>> {
    let segments = (secs as f64 / SEGMENT).ceil() as u32;
    let mut out = Vec::new();
    let mut first = 0;
    while first < segments {
        let end = (first + CHUNK_SEGMENTS).min(segments);
        let req = VideoChunkRequest {
            rotation: 0,
            source: common::source_file(src)?,
            frame_rate: (FPS, 1),
            segment_duration: SEGMENT,
            first_segment: first,
            end_segment: end,
            total_frames: u64::from(secs * FPS),
            rungs: std::slice::from_ref(rung),
            threads: 1,
        };
        out.extend(encode_video_chunk(&req)?);
        first = end;
    }
    Ok(out)
}

/// (average kb/s, largest segment kb/s) of the samples.
fn rates(chunks: &[RenditionChunk], secs: u32) -> (f64, f64) {
    let mut total = 0u64;
    let mut peak = 0f64;
    for s in chunks.iter().flat_map(|c| &c.segments) {
        let bytes: u64 = s.samples.iter().map(|x| x.data.len() as u64).sum();
        let frames = s.samples.len() as f64;
        total += bytes;
        peak = peak.max(bytes as f64 * 8.0 / (frames / f64::from(FPS)) / 1000.0);
    }
    (total as f64 * 8.0 / f64::from(secs) / 1000.0, peak)
}

fn rung(name: &str, h: u32, kbps: u32, codec: VideoCodec) -> Rung {
    Rung {
        name: name.into(),
        width: h * 16 / 9,
        height: h,
        bitrate_kbps: kbps,
        codec,
    }
}

const RAV1E: VideoCodec = VideoCodec::Av1 { speed: 10 };
const X264: VideoCodec = VideoCodec::H264 {
    preset: X264Preset::Veryfast,
};

/// One point of an encoder: (target kb/s, delivered kb/s, PSNR dB, frames per CPU-second).
type Point = (u32, f64, f64, f64);
/// An encoder's measure at a target (kb/s).
type MeasurePoint<'a> = dyn Fn(u32) -> Result<Point> + 'a;

/// Our encoders through the seam at `kbps`, 640x360, one thread.
fn point_ours(dir: &Path, src: &Path, kind: &str, codec: VideoCodec, kbps: u32) -> Result<Point> {
    let r = rung("cmp", 360, kbps, codec);
    let c0 = cpu_seconds(libc::RUSAGE_SELF);
    let chunks = encode(src, CMP_SECS, &r)?;
    let secs = cpu_seconds(libc::RUSAGE_SELF) - c0;
    let file = dir.join(format!("cmp-{kind}-{kbps}.mp4"));
    write_mp4(&chunks, &file)?;
    let (avg, _) = rates(&chunks, CMP_SECS);
    Ok((
        kbps,
        avg,
        vod_testkit::psnr(&file, src, 640, 360),
        f64::from(CMP_SECS * FPS) / secs,
    ))
}

/// SVT-AV1 (libsvtav1 in Debian's ffmpeg) at `kbps`, one logical processor, the same chunks' length in one run.
fn point_svt(dir: &Path, src: &Path, kind: &str, kbps: u32) -> Result<Point> {
    let file = dir.join(format!("cmp-svt-{kind}-{kbps}.mp4"));
    let c0 = cpu_seconds(libc::RUSAGE_CHILDREN);
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-threads", "1", "-i"])
        .arg(src)
        .args([
            "-vf",
            "scale=640:360:flags=bicubic",
            "-c:v",
            "libsvtav1",
            "-preset",
            "10",
        ])
        .args([
            "-b:v",
            &format!("{kbps}k"),
            "-svtav1-params",
            "lp=1",
            "-g",
            "120",
            "-an",
        ])
        .arg(&file))?;
    let secs = cpu_seconds(libc::RUSAGE_CHILDREN) - c0;
    let size = std::fs::metadata(&file)?.len();
    let avg = size as f64 * 8.0 / f64::from(CMP_SECS) / 1000.0;
    Ok((
        kbps,
        avg,
        vod_testkit::psnr(&file, src, 640, 360),
        f64::from(CMP_SECS * FPS) / secs,
    ))
}

/// The bitrate at `q` dB, interpolated in log-bitrate between the two points around it (None outside).
fn rate_at(points: &[Point], q: f64) -> Option<f64> {
    let mut p: Vec<(f64, f64)> = points.iter().map(|x| (x.2, x.1.ln())).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p.windows(2).find(|w| w[0].0 <= q && q <= w[1].0).map(|w| {
        let t = if w[1].0 > w[0].0 {
            (q - w[0].0) / (w[1].0 - w[0].0)
        } else {
            0.0
        };
        (w[0].1 + t * (w[1].1 - w[0].1)).exp()
    })
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(".build/bench");
    std::fs::create_dir_all(&dir)?;
    let mut md = String::from(
        "# Rate-control and encoder benchmark\n\nOne run on this machine (2 cores; one encoder thread each). \
         Sources: 1280x720 at 30 fps made by ffmpeg (x264 CRF 10): *easy* testsrc2, *hard* testsrc2 under \
         temporal noise (`noise=alls=12:allf=t+u`), *static* colour bars. Method: `cargo run -p vod-e2e --bin \
         vod-bench-rate` (media crates optimised in every profile).\n\n## Rate accuracy\n\n12 s per source, 4 s segments, chunks of two segments each \
         encoded on its own (as the `adaptive` preset plans them). Targets are the `adaptive` preset's. Average = all \
         bytes over the duration; peak = the largest segment's rate. Goal (issue 17): average within ±10 % of the \
         target, every segment within 2× the average.\n\nBefore: rav1e's default `quantizer` (100) is the ceiling of its \
         rate controller in bitrate mode, which kept it far above low targets — the first run of this benchmark \
         (rav1e speed 10, easy content) measured 1158 kb/s for 600 at 360p (1.93×) and 5985 for 2500 at 720p \
         (2.39×); the issue measured 1.71× at 1080p with `adaptive-av1`. Now the ceiling is 255 and a chunk \
         more than 8 % off its target is encoded again with a corrected target (at most twice, and not when the \
         encoder did not answer a change; `vod_encode::video`). Static pictures need a small fraction of any target: \
         the encoders deliver what they need (the target is a ceiling there, never padded).\n\n| encoder | content | rung | target kb/s | average kb/s | \
         average ÷ target | peak kb/s | peak ÷ average | PSNR dB |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut rows = Vec::new();
    for (kind, graph) in CONTENT {
        let src = source(&dir, kind, graph, RATE_SECS)?;
        for (encoder, codec, ladder) in [
            ("rav1e speed 10", RAV1E, [(360, 600), (720, 2500)]),
            ("x264 veryfast", X264, [(360, 900), (720, 3500)]),
        ] {
            for (h, kbps) in ladder {
                let r = rung(&format!("{h}p"), h, kbps, codec);
                let chunks = encode(&src, RATE_SECS, &r)?;
                let (avg, peak) = rates(&chunks, RATE_SECS);
                let file = dir.join(format!("rate-{kind}-{h}-{}.mp4", codec_name(codec)));
                write_mp4(&chunks, &file)?;
                let q = vod_testkit::psnr(&file, &src, r.width.into(), r.height.into());
                md.push_str(&format!(
                    "| {encoder} | {kind} | {h}p | {kbps} | {avg:.0} | {:.2} | {peak:.0} | {:.2} | {q:.2} |\n",
                    avg / f64::from(kbps),
                    peak / avg
                ));
                rows.push(
                    json!({"encoder": encoder, "content": kind, "rung": h, "target_kbps": kbps,
                    "average_kbps": avg, "peak_kbps": peak, "psnr_db": q}),
                );
                eprintln!("{encoder} {kind} {h}p: {avg:.0} / {kbps} kb/s, peak {peak:.0}");
            }
        }
    }

    md.push_str(
        "\n## Encoders\n\n6 s at 640x360 from the same sources, three targets each; frames per CPU-second with one \
         thread (decode and scale included for all: ours in process, SVT-AV1 as an ffmpeg child, `-threads 1`, \
         `lp=1`). *kb/s at equal PSNR*: each encoder's bitrate interpolated (log-rate, linear in PSNR) at one PSNR \
         all three reach; ratio against x264.\n\n| content | encoder | frames/CPU-s | kb/s → PSNR dB (three targets) \
         | PSNR compared | kb/s at it | ÷ x264 |\n|---|---|---:|---|---:|---:|---:|\n",
    );
    let mut cmp = Vec::new();
    for (kind, graph) in CONTENT.iter().take(2) {
        let src = source(&dir, kind, graph, CMP_SECS)?;
        let targets = [300u32, 600, 1200];
        let rav1e = |k: u32| point_ours(&dir, &src, &format!("{kind}-rav1e"), RAV1E, k);
        let x264 = |k: u32| point_ours(&dir, &src, &format!("{kind}-x264"), X264, k);
        let svt = |k: u32| point_svt(&dir, &src, kind, k);
        let encoders: [(&str, &MeasurePoint); 3] = [
            ("rav1e speed 10", &rav1e),
            ("x264 veryfast", &x264),
            ("SVT-AV1 preset 10 (ffmpeg)", &svt),
        ];
        let mut per: Vec<(&str, Vec<Point>)> = Vec::new();
        for (name, point) in encoders {
            per.push((name, targets.iter().map(|k| point(*k)).collect::<Result<_>>()?));
        }
        // A PSNR every encoder's points span: the highest of their lowest, or the lowest of their highest.
        let lo = per
            .iter()
            .map(|(_, p)| p.iter().map(|x| x.2).fold(f64::MAX, f64::min))
            .fold(f64::MIN, f64::max);
        let hi = per
            .iter()
            .map(|(_, p)| p.iter().map(|x| x.2).fold(f64::MIN, f64::max))
            .fold(f64::MAX, f64::min);
        let q = (lo + hi) / 2.0;
        let x264_rate = per
            .iter()
            .find(|(n, _)| n.starts_with("x264"))
            .and_then(|(_, p)| rate_at(p, q));
        for (name, points) in &per {
            let fps = points.iter().map(|p| p.3).sum::<f64>() / points.len() as f64;
            let curve: Vec<String> = points.iter().map(|p| format!("{:.0} → {:.2}", p.1, p.2)).collect();
            let at = rate_at(points, q);
            let fmt = |v: Option<f64>, d: usize| v.map_or("—".to_string(), |v| format!("{v:.d$}"));
            md.push_str(&format!(
                "| {kind} | {name} | {fps:.1} | {} | {q:.2} | {} | {} |\n",
                curve.join("; "),
                fmt(at, 0),
                fmt(at.zip(x264_rate).map(|(a, b)| a / b), 2)
            ));
            cmp.push(json!({"content": kind, "encoder": name, "frames_per_cpu_second": fps,
                "points": points.iter().map(|p| json!({"target_kbps": p.0, "kbps": p.1, "psnr_db": p.2})).collect::<Vec<_>>(),
                "psnr_compared": q, "kbps_at_psnr": at}));
            eprintln!("{kind} {name}: {fps:.1} fps/core, {:?} kb/s at {q:.2} dB", at);
        }
    }
    std::fs::write(root.join("bench/rate-report.md"), md)?;
    std::fs::write(
        root.join("bench/rate-report.json"),
        serde_json::to_vec_pretty(&json!({"rate_accuracy": rows, "encoders": cmp}))?,
    )?;
    Ok(())
}

fn codec_name(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::Av1 { .. } => "av1",
        VideoCodec::H264 { .. } => "h264",
    }
}
