//! Every accepted container, made by ffmpeg, probes with its streams; other formats are refused by name; reads
//! stay bounded.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use vod_testkit::{ffmpeg, synth};

use super::*;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vod-avprobe-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A file in memory that counts what is read of it.
struct Counted {
    bytes: Vec<u8>,
    read: AtomicU64,
}

impl ReadAt for Counted {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let out = self.bytes.read_at(offset, len)?;
        self.read.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

fn probe_file(path: &Path) -> (Result<MediaInfo, ProbeError>, u64, u64) {
    let src = Counted {
        bytes: std::fs::read(path).expect("read"),
        read: AtomicU64::new(0),
    };
    let r = vod_media::probe_with(&src, std::time::Duration::from_secs(20), FORMATS);
    (r, src.read.load(Ordering::Relaxed), src.bytes.len() as u64)
}

/// `synth` inputs (2 s) encoded with `codec`, into `name`.
fn made(dir: &Path, name: &str, secs: u32, codec: &[&str]) -> std::path::PathBuf {
    let inputs = synth("320x240", 25, secs);
    let mut args: Vec<&str> = inputs.iter().map(String::as_str).collect();
    args.extend_from_slice(codec);
    ffmpeg(&args, &dir.join(name))
}

/// A file to make (name, ffmpeg codec arguments) and what its probe must find (container, video and audio codecs).
type Case<'a> = (&'a str, &'a [&'a str], Container, Option<&'a str>, Option<&'a str>);

#[test]
fn every_accepted_container_probes_with_its_streams() {
    let dir = scratch("accepted");
    let cases: &[Case] = &[
        (
            "ts.ts",
            &["-c:v", "libx264", "-c:a", "ac3"],
            Container::MpegTs,
            Some("h264"),
            Some("ac3"),
        ),
        (
            "m2ts.m2ts",
            &[
                "-c:v",
                "libx264",
                "-c:a",
                "ac3",
                "-mpegts_m2ts_mode",
                "1",
                "-f",
                "mpegts",
            ],
            Container::MpegTs,
            Some("h264"),
            Some("ac3"),
        ),
        (
            "mxf.mxf",
            &[
                "-c:v",
                "mpeg2video",
                "-pix_fmt",
                "yuv422p",
                "-b:v",
                "5M",
                "-c:a",
                "pcm_s16le",
                "-ar",
                "48000",
            ],
            Container::Mxf,
            Some("mpeg2video"),
            Some("pcm_s16le"),
        ),
        (
            "avi.avi",
            &["-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-c:a", "pcm_s16le"],
            Container::Avi,
            Some("mjpeg"),
            Some("pcm_s16le"),
        ),
        (
            "wmv.wmv",
            &["-c:v", "wmv2", "-c:a", "wmav2"],
            Container::Asf,
            Some("wmv2"),
            Some("wmav2"),
        ),
        (
            "flv.flv",
            &["-c:v", "libx264", "-c:a", "aac", "-ar", "44100"],
            Container::Flv,
            Some("h264"),
            Some("aac"),
        ),
        (
            "ps.mpg",
            &["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"],
            Container::MpegPs,
            Some("mpeg2video"),
            Some("mp2"),
        ),
        (
            "mp3.mp3",
            &["-vn", "-c:a", "libmp3lame"],
            Container::Mp3,
            None,
            Some("mp3"),
        ),
        ("aac.aac", &["-vn", "-c:a", "aac"], Container::Aac, None, Some("aac")),
        (
            "flac.flac",
            &["-vn", "-c:a", "flac"],
            Container::Flac,
            None,
            Some("flac"),
        ),
        (
            "ogg.ogg",
            &["-c:v", "libtheora", "-c:a", "libvorbis"],
            Container::Ogg,
            Some("theora"),
            Some("vorbis"),
        ),
    ];
    for (name, codec, container, video, audio) in cases {
        let path = made(&dir, name, 2, codec);
        let (info, read, size) = probe_file(&path);
        let info = info.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.container, *container, "{name}");
        assert_eq!(info.video.first().map(|v| v.codec.as_str()), *video, "{name}");
        assert_eq!(info.audio.first().map(|a| a.codec.as_str()), *audio, "{name}");
        if video.is_some() {
            assert_eq!((info.video[0].width, info.video[0].height), (320, 240), "{name}");
            assert!(
                (info.video[0].frame_rate - 25.0).abs() < 0.01,
                "{name}: {:?}",
                info.video[0]
            );
        }
        assert!((info.duration_secs - 2.0).abs() < 0.2, "{name}: {}", info.duration_secs);
        assert!(read <= size.max(1 << 20) * 2, "{name}: read {read} of {size}");
    }
}

#[test]
fn interlaced_sources_report_their_field_order() {
    let dir = scratch("fields");
    for (filter, flags, want) in [
        ("tinterlace=mode=interleave_top", "tff=1", Some(FieldOrder::Tff)),
        ("tinterlace=mode=interleave_bottom", "bff=1", Some(FieldOrder::Bff)),
        ("null", "", Some(FieldOrder::Progressive)),
    ] {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=50",
            "-t",
            "1",
            "-vf",
            filter,
        ];
        args.extend(["-c:v", "libx264"]);
        if !flags.is_empty() {
            args.extend(["-flags", "+ilme+ildct", "-x264opts", flags]);
        }
        let ts = ffmpeg(&args, &dir.join(format!("{filter}.ts")));
        let (info, _, _) = probe_file(&ts);
        let info = info.expect("a transport stream");
        assert_eq!(info.video[0].field_order, want, "{filter}");
    }
}

#[test]
fn cover_art_is_not_a_video_stream() {
    let dir = scratch("cover");
    let cover = ffmpeg(
        &["-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1"],
        &dir.join("c.png"),
    );
    let mp3 = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-i",
            cover.to_str().expect("path"),
            "-map",
            "0",
            "-map",
            "1",
            "-c:a",
            "libmp3lame",
            "-c:v",
            "png",
            "-disposition:v",
            "attached_pic",
            "-id3v2_version",
            "3",
        ],
        &dir.join("tagged.mp3"),
    );
    let (info, _, _) = probe_file(&mp3);
    let info = info.expect("an MP3 with an ID3 picture");
    assert_eq!(info.container, Container::Mp3);
    assert!(info.video.is_empty(), "{:?}", info.video);
}

#[test]
fn other_formats_are_refused_by_name() {
    let dir = scratch("refused");
    let nut = made(&dir, "x.nut", 1, &["-c:v", "ffv1", "-c:a", "pcm_s16le"]);
    let (r, _, _) = probe_file(&nut);
    match r {
        Err(ProbeError::UnsupportedFormat(m)) => assert!(m.contains("(nut)") && m.contains("not an accepted"), "{m}"),
        other => panic!("{other:?}"),
    }
    let png = ffmpeg(
        &["-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1"],
        &dir.join("p.png"),
    );
    let (r, _, _) = probe_file(&png);
    assert!(matches!(r, Err(ProbeError::UnsupportedFormat(_))), "{r:?}");
    // Random bytes: nothing recognises them.
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = vod_media::probe_with(&noise, std::time::Duration::from_secs(5), FORMATS);
    assert!(matches!(r, Err(ProbeError::UnsupportedFormat(_))), "{r:?}");
}

#[test]
fn a_long_transport_stream_is_probed_from_its_head_and_tail() {
    let dir = scratch("long");
    let ts = made(
        &dir,
        "long.ts",
        60,
        &["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M", "-c:a", "ac3"],
    );
    let (info, read, size) = probe_file(&ts);
    let info = info.expect("a transport stream");
    assert!((info.duration_secs - 60.0).abs() < 0.5, "{}", info.duration_secs);
    assert!(read < size / 2, "read {read} of {size} bytes");
}

#[test]
fn truncated_and_corrupt_transport_streams_are_errors_not_panics() {
    let dir = scratch("broken");
    let ts = made(&dir, "ok.ts", 2, &["-c:v", "libx264", "-c:a", "ac3"]);
    let bytes = std::fs::read(&ts).expect("read");
    // Cut short: an error, or (a third of the file) what is there; never a panic or a hang.
    for cut in [200usize, 4096, bytes.len() / 3] {
        let part = bytes[..cut].to_vec();
        let r = vod_media::probe_with(&part, std::time::Duration::from_secs(5), FORMATS);
        match r {
            Ok(info) => assert!(cut > 4096 && info.duration_secs < 2.0, "{cut}: {info:?}"),
            Err(ProbeError::Truncated(m)) if cut == 4096 => assert!(m.contains("ac3"), "{m}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Garbled after its first packets: whatever libavformat makes of it, it answers.
    let mut garbled = bytes.clone();
    for (i, b) in garbled.iter_mut().enumerate().skip(4096) {
        *b ^= (i % 251) as u8;
    }
    let r = vod_media::probe_with(&garbled, std::time::Duration::from_secs(5), FORMATS);
    assert!(r.as_ref().map_or(true, |i| i.container == Container::MpegTs), "{r:?}");
}
