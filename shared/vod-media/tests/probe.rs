//! End-to-end probe tests on media generated with ffmpeg, plus hostile inputs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{bytes, ffprobe_duration, Counting, Mutated};
use vod_media::{probe, Container, MediaInfo, ProbeError, ReadAt, SourceReader};

fn probe_file(name: &str) -> MediaInfo {
    let data = bytes(name);
    match probe(&data) {
        Ok(info) => info,
        Err(e) => panic!("probe {name}: {e}"),
    }
}

/// Checks durations against ffprobe (within one frame) and the expected video layout.
fn check_video(name: &str, info: &MediaInfo, codec: &str, w: u32, h: u32, fps: f64, secs: f64) {
    let frame = 1.0 / fps;
    let reference = ffprobe_duration(name);
    assert!(
        (info.duration_secs - reference).abs() <= frame,
        "{name}: {} vs ffprobe {reference}",
        info.duration_secs
    );
    assert!(
        (info.duration_secs - secs).abs() <= frame,
        "{name}: {} vs {secs}",
        info.duration_secs
    );
    assert_eq!(info.video.len(), 1, "{name}: {info:?}");
    let v = &info.video[0];
    assert_eq!(v.codec, codec, "{name}");
    assert_eq!((v.width, v.height), (w, h), "{name}");
    assert!((v.frame_rate - fps).abs() < 0.01, "{name}: fps {}", v.frame_rate);
    assert!(
        (v.duration_secs - secs).abs() <= frame,
        "{name}: video duration {}",
        v.duration_secs
    );
    if let Some(n) = v.frame_count {
        assert!((n as f64 - secs * fps).abs() <= 1.0, "{name}: {n} frames");
    }
    assert!(info.bitrate.is_some_and(|b| b > 0), "{name}");
}

fn check_audio(name: &str, info: &MediaInfo, codec: &str, channels: u16, rate: u32, secs: f64) {
    assert_eq!(info.audio.len(), 1, "{name}: {info:?}");
    let a = &info.audio[0];
    assert_eq!(a.codec, codec, "{name}");
    assert_eq!(a.channels, channels, "{name}");
    assert_eq!(a.sample_rate, rate, "{name}");
    assert!(
        (a.duration_secs - secs).abs() <= 0.05,
        "{name}: audio duration {}",
        a.duration_secs
    );
}

#[test]
fn mp4_h264_aac_moov_at_end() {
    let info = probe_file("h264_aac.mp4");
    assert_eq!(info.container, Container::Mp4);
    check_video("h264_aac.mp4", &info, "h264", 320, 240, 25.0, 2.0);
    check_audio("h264_aac.mp4", &info, "aac", 2, 48000, 2.0);
    assert_eq!(info.video[0].frame_count, Some(50));
    assert_eq!(info.video[0].rotation, Some(0));
    assert!(info.video[0].bitrate.is_some() && info.audio[0].bitrate.is_some());
    // Serialises and round-trips.
    let json = serde_json::to_string(&info).unwrap();
    assert!(json.contains("\"container\":\"mp4\""));
    assert_eq!(serde_json::from_str::<MediaInfo>(&json).unwrap(), info);
}

#[test]
fn mp4_faststart() {
    let info = probe_file("faststart.mp4");
    assert_eq!(info.container, Container::Mp4);
    check_video("faststart.mp4", &info, "h264", 320, 240, 25.0, 2.0);
    check_audio("faststart.mp4", &info, "aac", 2, 48000, 2.0);
}

#[test]
fn mov_h264_aac() {
    let info = probe_file("h264_aac.mov");
    assert_eq!(info.container, Container::Mov);
    check_video("h264_aac.mov", &info, "h264", 320, 240, 25.0, 2.0);
    check_audio("h264_aac.mov", &info, "aac", 2, 48000, 2.0);
}

#[test]
fn mp4_odd_size_mono() {
    let info = probe_file("odd_mono.mp4");
    check_video("odd_mono.mp4", &info, "h264", 321, 241, 30.0, 1.0);
    check_audio("odd_mono.mp4", &info, "aac", 1, 44100, 1.0);
}

#[test]
fn mp4_hevc() {
    let info = probe_file("hevc.mp4");
    check_video("hevc.mp4", &info, "hevc", 320, 240, 25.0, 1.0);
    check_audio("hevc.mp4", &info, "aac", 2, 48000, 1.0);
}

#[test]
fn mov_prores_pcm() {
    let info = probe_file("prores.mov");
    assert_eq!(info.container, Container::Mov);
    check_video("prores.mov", &info, "prores", 320, 240, 25.0, 1.0);
    check_audio("prores.mov", &info, "pcm_s16le", 2, 48000, 1.0);
}

#[test]
fn mp4_rotation() {
    // ffmpeg 5.1 turns `rotate=90` into a matrix that ffprobe reports as
    // "rotation=90" (counter-clockwise); we report clockwise degrees.
    let info = probe_file("rotated.mp4");
    assert_eq!(info.video[0].rotation, Some(270));
    // Width and height are the coded size, not the displayed one.
    assert_eq!((info.video[0].width, info.video[0].height), (320, 240));
}

#[test]
fn matroska_h264_aac() {
    let info = probe_file("h264_aac.mkv");
    assert_eq!(info.container, Container::Matroska);
    check_video("h264_aac.mkv", &info, "h264", 320, 240, 25.0, 2.0);
    check_audio("h264_aac.mkv", &info, "aac", 2, 48000, 2.0);
}

/// Key-frame times (ms from the first frame) as ffprobe reads them from the packets.
fn ffprobe_key_frames(name: &str) -> Vec<u64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(common::path(name))
        .output()
        .expect("ffprobe runs");
    let packets: Vec<(f64, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, flags) = l.split_once(',')?;
            Some((t.parse().ok()?, flags.contains('K')))
        })
        .collect();
    let first = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut keys: Vec<u64> = packets
        .iter()
        .filter(|p| p.1)
        .map(|p| ((p.0 - first) * 1000.0).round() as u64)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn key_frames_come_from_the_container_index() {
    for name in ["gop.mp4", "gop.mkv", "gop.webm"] {
        let info = probe_file(name);
        let keys = &info.video[0].key_frames_ms;
        assert_eq!(keys, &vec![0, 1200, 3400, 5000], "{name}");
        assert_eq!(keys, &ffprobe_key_frames(name), "{name}");
    }
    // Intra-only (every sample a sync sample) and raw video: nothing for the planner to choose from.
    assert!(probe_file("prores.mov").video[0].key_frames_ms.is_empty());
    assert!(probe_file("clip.y4m").video[0].key_frames_ms.is_empty());
}

#[test]
fn webm_vp9_opus() {
    let info = probe_file("vp9_opus.webm");
    assert_eq!(info.container, Container::Webm);
    check_video("vp9_opus.webm", &info, "vp9", 320, 240, 25.0, 2.0);
    check_audio("vp9_opus.webm", &info, "opus", 2, 48000, 2.0);
}

#[test]
fn y4m_clips() {
    let info = probe_file("clip.y4m");
    assert_eq!(info.container, Container::Y4m);
    check_video("clip.y4m", &info, "rawvideo", 320, 240, 25.0, 1.0);
    assert_eq!(info.video[0].frame_count, Some(25));
    assert!(info.audio.is_empty());
    let info = probe_file("odd.y4m");
    check_video("odd.y4m", &info, "rawvideo", 321, 241, 25.0, 0.4);
    assert_eq!(info.video[0].frame_count, Some(10));
}

#[test]
fn wav_files() {
    let info = probe_file("stereo.wav");
    assert_eq!(info.container, Container::Wav);
    check_audio("stereo.wav", &info, "pcm_s16le", 2, 44100, 2.0);
    assert!((info.duration_secs - ffprobe_duration("stereo.wav")).abs() < 0.001);
    assert_eq!(info.audio[0].bitrate, Some(44100 * 2 * 16));
    let info = probe_file("mono_f32.wav");
    check_audio("mono_f32.wav", &info, "pcm_f32le", 1, 48000, 1.5);
    assert!((info.duration_secs - ffprobe_duration("mono_f32.wav")).abs() < 0.001);
}

#[test]
fn containers_without_av_streams() {
    for name in ["subs_only.mkv", "subs_only.mp4"] {
        let data = bytes(name);
        assert!(
            matches!(probe(&data), Err(ProbeError::NoStreams)),
            "{name}: {:?}",
            probe(&data)
        );
    }
}

const VALID: [&str; 9] = [
    "h264_aac.mp4",
    "faststart.mp4",
    "h264_aac.mov",
    "h264_aac.mkv",
    "vp9_opus.webm",
    "clip.y4m",
    "stereo.wav",
    "prores.mov",
    "hevc.mp4",
];

fn probe_no_panic(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    match catch_unwind(AssertUnwindSafe(|| probe(src))) {
        Ok(r) => r,
        Err(_) => panic!("probe panicked"),
    }
}

#[test]
fn truncated_files_are_errors() {
    for name in VALID {
        let data = bytes(name);
        for cut in [100, data.len() / 2, data.len() - 1000] {
            let r = probe_no_panic(&data[..cut].to_vec());
            assert!(r.is_err(), "{name} cut at {cut}/{}: {r:?}", data.len());
            if name == "h264_aac.mp4" || name == "stereo.wav" || name == "clip.y4m" {
                assert!(matches!(r, Err(ProbeError::Truncated(_))), "{name} cut at {cut}: {r:?}");
            }
        }
    }
}

#[test]
fn garbage_is_unsupported() {
    assert!(matches!(probe(&Vec::new()), Err(ProbeError::Empty)));
    let text = b"Hello, this is a plain text file and not a video at all.\n".repeat(20);
    assert!(matches!(probe(&text), Err(ProbeError::UnsupportedFormat(_))));
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0];
    jpeg.resize(2000, 0x55);
    assert!(matches!(probe(&jpeg), Err(ProbeError::UnsupportedFormat(_))));
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in [1usize, 7, 64, 4096, 100_000] {
        let random: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        let r = probe_no_panic(&random);
        assert!(r.is_err(), "{len} random bytes: {r:?}");
    }
}

#[test]
fn huge_box_claims_fail_fast() {
    let started = Instant::now();
    // 64-bit largesize of 10 GB in a 1 KB file.
    let mut f = vec![0u8; 1024];
    f[0..4].copy_from_slice(&1u32.to_be_bytes());
    f[4..8].copy_from_slice(b"moov");
    f[8..16].copy_from_slice(&10_000_000_000u64.to_be_bytes());
    assert!(matches!(probe(&f), Err(ProbeError::Truncated(_))));
    // A proper ftyp followed by a 32-bit moov claiming 4 GB.
    let mut f = vec![0u8; 1024];
    f[0..4].copy_from_slice(&16u32.to_be_bytes());
    f[4..12].copy_from_slice(b"ftypisom");
    f[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    f[20..24].copy_from_slice(b"moov");
    assert!(matches!(probe(&f), Err(ProbeError::Truncated(_))));
    // A Matroska segment claiming 10 GB and a WAV data chunk claiming 4 GB.
    let mut mkv = bytes("h264_aac.mkv")[..1024].to_vec();
    mkv.truncate(1024);
    assert!(probe(&mkv).is_err());
    let mut wav = bytes("stereo.wav")[..1024].to_vec();
    let data_at = wav.windows(4).position(|w| w == b"data").unwrap();
    wav[data_at + 4..data_at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert!(matches!(probe(&wav), Err(ProbeError::Truncated(_))));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// Property-style robustness: every prefix (in steps) and single-byte flips at
/// many positions of each valid file must give Ok or Err, never a panic.
#[test]
fn prefixes_and_flips_never_panic() {
    for name in VALID {
        let data = bytes(name);
        let len = data.len();
        let mut cases = 0u64;
        let mut oks = 0u64;
        let mut run = |m: Mutated| {
            cases += 1;
            if probe_no_panic(&m).is_ok() {
                oks += 1;
            }
        };
        // Prefixes: every byte of the first 512, then ~200 evenly spaced lengths.
        for cut in (0..512.min(len)).chain((0..len).step_by((len / 200).max(1))) {
            run(Mutated {
                data: &data,
                len: cut,
                flip: None,
            });
        }
        // Flips: densely in the first and last 4 KiB (headers, moov/cues), sparsely elsewhere.
        let positions = (0..4096.min(len))
            .chain(len.saturating_sub(4096)..len)
            .chain((0..len).step_by((len / 300).max(1)));
        for (i, pos) in positions.enumerate() {
            let xor = [0xFF, 0x01, 0x80, 0x7F][i % 4];
            run(Mutated {
                data: &data,
                len,
                flip: Some((pos, xor)),
            });
        }
        eprintln!("{name}: {cases} mutated inputs, {oks} still probed Ok");
    }
}

#[test]
fn moov_at_end_needs_few_reads() {
    let data = bytes("big.mp4");
    assert!(data.len() > 3 << 20, "big.mp4 is only {} bytes", data.len());
    // moov really is at the end.
    assert!(data.windows(4).position(|w| w == b"moov").unwrap() > data.len() / 2);
    let src = Counting {
        data: &data,
        calls: AtomicU64::new(0),
    };
    let info = probe(&src).unwrap();
    assert_eq!(info.video[0].frame_count, Some(50));
    let calls = src.calls.load(Ordering::Relaxed);
    assert!(calls <= 8, "{calls} read_at calls");

    // Matroska goes through SourceReader's block cache.
    let mkv = bytes("h264_aac.mkv");
    let src = Counting {
        data: &mkv,
        calls: AtomicU64::new(0),
    };
    probe(&src).unwrap();
    let calls = src.calls.load(Ordering::Relaxed);
    assert!(calls <= 6, "{calls} read_at calls for mkv");
}

#[test]
fn source_reader_caches_blocks() {
    use std::io::{Read, Seek, SeekFrom};
    let data = bytes("big.mp4");
    let src = Counting {
        data: &data,
        calls: AtomicU64::new(0),
    };
    let mut r = SourceReader::new(&src);
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, data.len());
    let blocks = data.len().div_ceil(1 << 20) as u64;
    assert_eq!(r.reads(), blocks);
    assert_eq!(src.calls.load(Ordering::Relaxed), blocks);
    // Small reads back and forth within the last blocks are served from the cache.
    for i in 0..100u64 {
        r.seek(SeekFrom::End(-((i * 977) as i64) - 8)).unwrap();
        r.read_exact(&mut buf[..8]).unwrap();
    }
    assert_eq!(r.reads(), blocks);
}
