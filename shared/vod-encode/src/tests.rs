//! Tests against media generated with the ffmpeg CLI at test time (never committed): bit-exact decoding,
//! chunk encoding checked by decoding the AV1 back with ffmpeg (frame count, size, PSNR), Opus audio
//! decoded with libopus, and hostile inputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vod_cmaf::{CodecConfig, Sample};

use crate::scale::picture_from_frame;
use crate::source::VideoSource;
use crate::*;

fn work_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vod-encode-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    })
    .clone()
}

/// A file generated once per test run in the work directory (written under a temporary name, then renamed).
fn generated(name: &str, args: &[&str]) -> PathBuf {
    let path = work_dir().join(name);
    if !path.exists() {
        let tmp = work_dir().join(format!("tmp-{}-{name}", std::process::id()));
        vod_testkit::ffmpeg(args, &tmp);
        std::fs::rename(&tmp, &path).expect("rename");
    }
    path
}

/// 3 s of a 440 Hz sine, mono 44.1 kHz PCM WAV.
fn mono44_wav() -> PathBuf {
    generated(
        "mono44.wav",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "3",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
        ],
    )
}

/// 6 s of testsrc2 320x240 at 25 fps, H.264 High with B-frames (x264 defaults), 48 kHz stereo AAC.
fn source_mp4() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let path = work_dir().join("src.mp4");
        let tmp = vod_testkit::h264_aac_mp4(
            &work_dir(),
            &format!("tmp-{}-src.mp4", std::process::id()),
            "320x240",
            25,
            6,
        );
        std::fs::rename(&tmp, &path).expect("rename");
        path
    })
    .clone()
}

fn ffprobe(path: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Test-only IVF writer.
fn write_ivf(path: &Path, width: u16, height: u16, fps: (u32, u32), samples: &[&Sample]) {
    let mut out = Vec::new();
    out.extend_from_slice(b"DKIF");
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"AV01");
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&fps.0.to_le_bytes());
    out.extend_from_slice(&fps.1.to_le_bytes());
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (i, s) in samples.iter().enumerate() {
        out.extend_from_slice(&(s.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(i as u64).to_le_bytes());
        out.extend_from_slice(&s.data);
    }
    std::fs::write(path, out).expect("write ivf");
}

/// Average PSNR (all planes) of `encoded` against the first `frames` frames of `reference` scaled to
/// `w×h` with the same bicubic scaler.
fn psnr(encoded: &Path, reference: &Path, frames: usize, w: u32, h: u32) -> f64 {
    let graph = format!(
        "[1:v]trim=end_frame={frames},setpts=PTS-STARTPTS,scale={w}:{h}:flags=bicubic,format=yuv420p[r];\
         [0:v]setpts=PTS-STARTPTS[e];[e][r]psnr"
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(encoded)
        .arg("-i")
        .arg(reference)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .expect("run ffmpeg psnr");
    let log = String::from_utf8_lossy(&out.stderr);
    let avg = log
        .lines()
        .filter_map(|l| l.split("average:").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back();
    avg.unwrap_or_else(|| panic!("no PSNR in ffmpeg output: {log}"))
}

#[test]
fn decode_is_bit_exact_with_b_frames() {
    let src = source_mp4();
    let expected = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(&src)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ])
        .output()
        .expect("ffmpeg rawvideo");
    assert!(expected.status.success());
    let mut decoded = Vec::new();
    let mut frames = 0;
    let mut source = VideoSource::open(source_file(&src), 2).expect("open");
    while let Some(f) = source.next_frame().expect("decode") {
        let pic = picture_from_frame(&f.frame).expect("yuv420p");
        for p in &pic.planes {
            decoded.extend_from_slice(p);
        }
        frames += 1;
    }
    assert_eq!(frames, 150);
    assert_eq!(decoded.len(), expected.stdout.len());
    assert!(decoded == expected.stdout, "decoded planes differ from ffmpeg's");
}

#[test]
fn frames_before_a_chunk_skip_decoding_without_changing_the_shown_ones() {
    let src = source_mp4();
    let planes = |f: &ffmpeg_next::frame::Video| -> Vec<u8> { picture_from_frame(f).expect("yuv420p").planes.concat() };
    let mut whole = std::collections::BTreeMap::new();
    let mut source = VideoSource::open(source_file(&src), 2).expect("open");
    while let Some(f) = source.next_frame().expect("decode") {
        whole.insert(f.pts, planes(&f.frame));
    }
    assert_eq!(whole.len(), 150);
    // x264's defaults: one key frame (the first) and B-frames that nothing references.
    let limit = source.origin + 3 * i64::from(source.time_base.1) / i64::from(source.time_base.0);
    let mut skipping = VideoSource::open(source_file(&src), 2).expect("open");
    skipping.seek(limit).expect("seek");
    skipping.skip_unshown_before(limit);
    let (mut before, mut after) = (0, 0);
    while let Some(f) = skipping.next_frame().expect("decode") {
        if f.pts < limit {
            before += 1;
            continue;
        }
        after += 1;
        assert!(
            whole.get(&f.pts) == Some(&planes(&f.frame)),
            "frame at {} differs",
            f.pts
        );
    }
    let expected_after = whole.keys().filter(|p| **p >= limit).count();
    assert_eq!(after, expected_after, "every shown frame is decoded");
    let expected_before = whole.len() - expected_after;
    assert!(
        before * 10 < expected_before * 7,
        "{before} of {expected_before} earlier frames decoded"
    );
}

/// ffprobe reads the 75 frames of the rung's size (and `probe`'s extra entries and values) and the PSNR against
/// the source is above 30 dB.
fn assert_rendition(file: &Path, src: &Path, rung: &Rung, probe: (&str, &str)) {
    assert_eq!(
        ffprobe(file, &format!("stream={}width,height,nb_read_frames", probe.0)),
        format!("{}{},{},75", probe.1, rung.width, rung.height)
    );
    let db = psnr(file, src, 75, rung.width, rung.height);
    eprintln!("{} ({:?}): PSNR {db:.2} dB", rung.name, rung.codec);
    assert!(db > 30.0, "{}: PSNR {db}", rung.name);
}

fn ladder() -> Vec<Rung> {
    vec![
        Rung {
            name: "240p".into(),
            width: 320,
            height: 240,
            bitrate_kbps: 1500,
            codec: VideoCodec::Av1 { speed: 10 },
        },
        Rung {
            name: "120p".into(),
            width: 160,
            height: 120,
            bitrate_kbps: 500,
            codec: VideoCodec::Av1 { speed: 10 },
        },
    ]
}

fn request<'a>(src: &'a Path, rungs: &'a [Rung], first: u32, end: u32) -> VideoChunkRequest<'a> {
    VideoChunkRequest {
        rotation: 0,
        source: source_file(src),
        frame_rate: (25, 1),
        segment_duration: 1.0,
        first_segment: first,
        end_segment: end,
        total_frames: 150,
        rungs,
        threads: 2,
    }
}

/// Rate control keeps its promise: every rung of every encoder delivers its chunk within ±10 % of its target
/// (rav1e's one-pass rate control alone delivered about twice the target on this content), every segment within
/// 2× the chunk's average, and the stream signals the rung's own level whatever target a corrective pass used.
#[test]
fn chunks_deliver_their_rung_target() {
    let src = source_mp4();
    let rungs: Vec<Rung> = [
        ("av1-240p", 320, 240, 400, VideoCodec::Av1 { speed: 10 }),
        ("av1-120p", 160, 120, 150, VideoCodec::Av1 { speed: 10 }),
        (
            "h264-240p",
            320,
            240,
            600,
            VideoCodec::H264 {
                preset: X264Preset::Veryfast,
            },
        ),
    ]
    .into_iter()
    .map(|(name, width, height, bitrate_kbps, codec)| Rung {
        name: name.into(),
        width,
        height,
        bitrate_kbps,
        codec,
    })
    .collect();
    let mut req = request(&src, &rungs, 0, 3);
    req.segment_duration = 2.0;
    let out = encode_video_chunk(&req).expect("chunk");
    for (rung, chunk) in rungs.iter().zip(&out) {
        let bytes: usize = chunk
            .segments
            .iter()
            .flat_map(|s| &s.samples)
            .map(|x| x.data.len())
            .sum();
        let avg = bytes as f64 * 8.0 / 6.0 / 1000.0;
        let ratio = avg / f64::from(rung.bitrate_kbps);
        eprintln!("{}: {avg:.0} kb/s for {} ({ratio:.3})", rung.name, rung.bitrate_kbps);
        assert!(
            (0.9..=1.1).contains(&ratio),
            "{}: {avg:.0} kb/s for a {} kb/s target",
            rung.name,
            rung.bitrate_kbps
        );
        for s in &chunk.segments {
            let seg: usize = s.samples.iter().map(|x| x.data.len()).sum();
            let rate = seg as f64 * 8.0 / (s.samples.len() as f64 / 25.0) / 1000.0;
            assert!(
                rate <= 2.0 * avg,
                "{} segment {}: {rate:.0} kb/s, average {avg:.0}",
                rung.name,
                s.number
            );
        }
        if let CodecConfig::Av1 { av1c, .. } = &chunk.track.codec {
            let fps = 25.0;
            let level = vod_cmaf::av1::level_for(rung.width, rung.height, fps, rung.bitrate_kbps * 2).expect("level");
            assert_eq!(av1c[1] & 0x1f, level, "{}: the rung's level", rung.name);
        }
    }
}

/// A corrective pass encodes only the rungs that missed: each at its own size and target, whatever its place in
/// the ladder.
#[test]
fn a_pass_over_some_rungs_encodes_each_at_its_size() {
    let src = source_mp4();
    let rungs = ladder();
    let req = request(&src, &rungs, 0, 2);
    let spans = crate::video::plan(&req).expect("spans");
    let subset = &rungs[1..];
    let out = crate::video::encode_pass(&req, subset, &[subset[0].bitrate_kbps], &spans).expect("pass");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rung, "120p");
    assert_eq!(out[0].track.codec.size(), (160, 120));
    assert_eq!(out[0].segments.len(), 2);
}

/// Static pictures (colour bars) need fewer bits than any target: the encoders neither fail (rav1e 0.8's rate
/// model overflowed with a one-segment reservoir) nor overshoot.
#[test]
fn static_pictures_encode_under_their_target() {
    let src = generated(
        "bars.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "smptebars=size=640x360:rate=25",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-crf",
            "10",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    for codec in [
        VideoCodec::Av1 { speed: 10 },
        VideoCodec::H264 {
            preset: X264Preset::Veryfast,
        },
    ] {
        let rungs = vec![Rung {
            name: "bars".into(),
            width: 320,
            height: 180,
            bitrate_kbps: 300,
            codec,
        }];
        let mut req = request(&src, &rungs, 0, 3);
        req.segment_duration = 2.0;
        let out = encode_video_chunk(&req).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        let bytes: usize = out[0]
            .segments
            .iter()
            .flat_map(|s| &s.samples)
            .map(|x| x.data.len())
            .sum();
        let kbps = bytes as f64 * 8.0 / 6.0 / 1000.0;
        assert!(kbps <= 330.0, "{codec:?}: {kbps:.0} kb/s for 300");
    }
}

#[test]
fn encodes_chunks_with_key_frames_at_segment_starts() {
    let src = source_mp4();
    let rungs = ladder();
    let a = encode_video_chunk(&request(&src, &rungs, 0, 2)).expect("chunk [0,2)");
    let b = encode_video_chunk(&request(&src, &rungs, 2, 3)).expect("chunk [2,3)");
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra.rung, rb.rung);
        assert_eq!(ra.track, rb.track, "both chunks must share the init segment");
        assert_eq!(ra.track.track_id, 1);
        assert_eq!(ra.track.timescale, 90_000);
        let CodecConfig::Av1 { av1c, .. } = &ra.track.codec else {
            panic!("not AV1")
        };
        assert_eq!(av1c.first(), Some(&0x81), "av1C marker/version");
        let record = vod_cmaf::codec::parse_av1c(av1c).expect("av1C");
        let rung = rungs.iter().find(|r| r.name == ra.rung).expect("rung");
        assert_eq!(
            Some(record.seq_level_idx_0),
            vod_cmaf::av1::level_for(rung.width, rung.height, 25.0, rung.bitrate_kbps * 2),
            "{}: the level of its size, rate and bitrate",
            ra.rung
        );
        assert_ne!(record.seq_level_idx_0, 31);
        // The sequence header OBU of the key frames says the same: with no timing info, its first operating
        // point's seq_level_idx is bits 24..29 of the payload.
        let key = &ra.segments[0].samples[0].data;
        let seq = vod_cmaf::av1::obus(key)
            .expect("OBUs")
            .into_iter()
            .find(|o| o.obu_type == 1)
            .expect("a sequence header before the key frame");
        let payload = &key[seq.payload.clone()];
        assert_eq!(payload[0] & 0x0c, 0, "not reduced, no timing info");
        assert_eq!(payload[3] >> 3, record.seq_level_idx_0, "sequence header level");
        let segs: Vec<&SegmentSamples> = ra.segments.iter().chain(&rb.segments).collect();
        assert_eq!(segs.iter().map(|s| s.number).collect::<Vec<_>>(), vec![0, 1, 2]);
        for s in &segs {
            assert_eq!(s.samples.len(), 25);
            assert_eq!(s.base_media_decode_time, u64::from(s.number) * 25 * 3600);
            assert!(s.samples[0].is_sync, "segment {} starts with a key frame", s.number);
            assert!(s.samples[1..].iter().all(|x| !x.is_sync), "one key frame per segment");
            assert!(s
                .samples
                .iter()
                .all(|x| x.duration == 3600 && x.composition_offset == 0));
            // No temporal delimiter OBU at the head of a sample.
            assert!(s
                .samples
                .iter()
                .all(|x| x.data.first().map(|b| (b >> 3) & 0xf) != Some(2)));
        }
        let samples: Vec<&Sample> = segs.iter().flat_map(|s| &s.samples).collect();
        let ivf = work_dir().join(format!("{}.ivf", ra.rung));
        write_ivf(&ivf, rung.width as u16, rung.height as u16, (25, 1), &samples);
        assert_rendition(&ivf, &src, rung, ("", ""));
        // A single chunk decodes on its own too.
        let solo: Vec<&Sample> = rb.segments.iter().flat_map(|s| &s.samples).collect();
        let ivf = work_dir().join(format!("{}-chunk2.ivf", ra.rung));
        write_ivf(&ivf, rung.width as u16, rung.height as u16, (25, 1), &solo);
        assert_eq!(ffprobe(&ivf, "stream=nb_read_frames"), "25");
    }
}

/// CMAF of a rendition's segments (init + fragments), as the packager serves them, for ffmpeg to read.
fn write_cmaf(path: &Path, track: &vod_cmaf::TrackConfig, segs: &[&SegmentSamples]) {
    let mut out = vod_cmaf::init_segment(track).expect("init segment");
    for s in segs {
        out.extend(
            vod_cmaf::media_segment(track, s.number + 1, s.base_media_decode_time, &s.samples).expect("fragment"),
        );
    }
    std::fs::write(path, out).expect("write cmaf");
}

#[test]
fn h264_chunks_are_cmaf_avc1_with_an_idr_at_each_segment_start() {
    let src = source_mp4();
    let rungs = vec![
        Rung {
            name: "240p".into(),
            width: 320,
            height: 240,
            bitrate_kbps: 800,
            codec: VideoCodec::H264 {
                preset: X264Preset::Veryfast,
            },
        },
        Rung {
            name: "120p".into(),
            width: 160,
            height: 120,
            bitrate_kbps: 300,
            codec: VideoCodec::H264 {
                preset: X264Preset::Veryfast,
            },
        },
    ];
    let a = encode_video_chunk(&request(&src, &rungs, 0, 2)).expect("chunk [0,2)");
    let b = encode_video_chunk(&request(&src, &rungs, 2, 3)).expect("chunk [2,3)");
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra.track, rb.track, "both chunks must share the init segment");
        let CodecConfig::H264 { avcc, .. } = &ra.track.codec else {
            panic!("not H.264")
        };
        let record = vod_cmaf::avc::parse_avcc(avcc).expect("avcC");
        assert_eq!(record.avc_profile_indication, 100, "High profile");
        let rung = rungs.iter().find(|r| r.name == ra.rung).expect("rung");
        let least =
            vod_cmaf::avc::level_for(rung.width, rung.height, 25.0, rung.bitrate_kbps * 3 / 2).expect("a level");
        assert!(
            (least..=40).contains(&record.avc_level_indication),
            "{}: level {} admits its size, rate and VBV peak (≥ {least}) and is not inflated",
            ra.rung,
            record.avc_level_indication
        );
        let codecs = vod_cmaf::codec_string(&ra.track.codec).expect("codec string");
        assert!(codecs.starts_with("avc1.64"), "{codecs}");
        let segs: Vec<&SegmentSamples> = ra.segments.iter().chain(&rb.segments).collect();
        for s in &segs {
            assert_eq!(s.samples.len(), 25);
            assert!(s.samples[0].is_sync, "segment {} starts with a key frame", s.number);
            assert!(s.samples[1..].iter().all(|x| !x.is_sync), "one key frame per segment");
            assert!(s.samples.iter().all(|x| x.composition_offset == 0), "no reordering");
            let first = vod_cmaf::avc::length_prefixed_units(&s.samples[0].data).expect("NAL units");
            assert!(
                first
                    .iter()
                    .any(|u| vod_cmaf::avc::nal_type(u) == Some(vod_cmaf::avc::NAL_IDR)),
                "segment {} starts with an IDR",
                s.number
            );
            for x in &s.samples {
                let units = vod_cmaf::avc::length_prefixed_units(&x.data).expect("NAL units");
                assert!(units.iter().all(|u| !matches!(
                    vod_cmaf::avc::nal_type(u),
                    Some(vod_cmaf::avc::NAL_SPS | vod_cmaf::avc::NAL_PPS)
                )));
            }
        }
        let mp4 = work_dir().join(format!("{}-h264.mp4", ra.rung));
        write_cmaf(&mp4, &ra.track, &segs);
        assert_rendition(&mp4, &src, rung, ("codec_name,profile,", "h264,High,"));
        // The second chunk alone decodes too (it starts with an IDR and carries no state of the first).
        let solo: Vec<&SegmentSamples> = rb.segments.iter().collect();
        let mp4 = work_dir().join(format!("{}-h264-chunk2.mp4", ra.rung));
        write_cmaf(&mp4, &rb.track, &solo);
        assert_eq!(ffprobe(&mp4, "stream=nb_read_frames"), "25");
    }
}

#[test]
fn last_segment_is_short_and_chunk_past_end_is_rejected() {
    let src = source_mp4();
    let rungs = vec![Rung {
        name: "s".into(),
        width: 160,
        height: 120,
        bitrate_kbps: 300,
        codec: VideoCodec::Av1 { speed: 10 },
    }];
    // 4 s segments over 6 s: segment 1 holds the last 50 frames.
    let mut req = request(&src, &rungs, 1, 2);
    req.segment_duration = 4.0;
    let out = encode_video_chunk(&req).expect("short last segment");
    assert_eq!(out[0].segments.len(), 1);
    assert_eq!(out[0].segments[0].samples.len(), 50);
    assert_eq!(out[0].segments[0].base_media_decode_time, 100 * 3600);
    req.first_segment = 2;
    req.end_segment = 3;
    assert!(matches!(encode_video_chunk(&req), Err(EncodeError::InvalidRequest(_))));
    let bad = vec![Rung {
        name: "odd".into(),
        width: 161,
        height: 120,
        bitrate_kbps: 300,
        codec: VideoCodec::Av1 { speed: 10 },
    }];
    assert!(matches!(
        encode_video_chunk(&request(&src, &bad, 0, 1)),
        Err(EncodeError::InvalidRequest(_))
    ));
    let mut zero = request(&src, &rungs, 0, 1);
    zero.frame_rate = (0, 1);
    assert!(matches!(encode_video_chunk(&zero), Err(EncodeError::InvalidRequest(_))));
}

/// Decodes the Opus packets with libopus, drops pre-skip, keeps `duration` samples per channel.
fn decode_opus(out: &AudioOutput) -> Vec<f32> {
    let CodecConfig::Opus { channels, pre_skip, .. } = out.track.codec else {
        panic!("not Opus")
    };
    let ch = if channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let mut dec = opus::Decoder::new(48_000, ch).expect("decoder");
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 5760 * usize::from(channels)];
    for s in out.segments.iter().flat_map(|s| &s.samples) {
        let n = dec.decode_float(&s.data, &mut buf, false).expect("decode");
        assert_eq!(n, 960);
        pcm.extend_from_slice(&buf[..n * usize::from(channels)]);
    }
    let c = usize::from(channels);
    let start = usize::from(pre_skip) * c;
    let end = start + out.duration_samples_48k as usize * c;
    assert!(pcm.len() >= end, "packets cover pre-skip + duration");
    pcm[start..end].to_vec()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn check_audio(out: &AudioOutput, channels: u8, seconds: f64) {
    assert_eq!(out.track.track_id, 2);
    assert_eq!(out.track.timescale, 48_000);
    let expected = seconds * 48_000.0;
    let got = out.duration_samples_48k as f64;
    assert!((got - expected).abs() <= 960.0, "duration {got} vs {expected}");
    let CodecConfig::Opus {
        channels: c, pre_skip, ..
    } = out.track.codec
    else {
        panic!("not Opus")
    };
    assert_eq!(c, channels);
    assert!(pre_skip > 0);
    let mut t = 0;
    for (k, s) in out.segments.iter().enumerate() {
        assert_eq!(s.number as usize, k);
        assert_eq!(s.base_media_decode_time, t);
        assert!(s.samples.iter().all(|x| x.is_sync && x.duration == 960));
        t += 960 * s.samples.len() as u64;
    }
    let pcm = decode_opus(out);
    let level = rms(&pcm);
    assert!(level > 0.05, "audio is silent (rms {level})");
}

#[test]
fn audio_aac_stereo_to_opus() {
    let src = source_mp4();
    let out = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus],
        source: source_file(&src),
        bitrate_kbps: 128,
        channels: 2,
        segment_duration: 1.0,
    })
    .expect("audio")
    .remove(0);
    check_audio(&out, 2, 6.0);
    assert_eq!(out.segments.len(), 7, "6 s + pre-skip padding in 1 s segments");
    assert_eq!(out.segments[0].samples.len(), 50);
}

#[test]
fn aac_beside_opus_from_one_decode_in_sync() {
    // 20 ms bursts of 1 kHz every second from 0.5 s (4.1 s in all), at 44.1 kHz (so both tracks are resampled).
    let mut args = vod_testkit::burst_args(4.1, 44_100);
    args.extend(["-c:a".into(), "pcm_s16le".into()]);
    let src = generated("bursts.wav", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let outs = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus, AudioCodec::Aac],
        source: source_file(&src),
        bitrate_kbps: 96,
        channels: 2,
        segment_duration: 1.0,
    })
    .expect("opus + aac");
    let [opus, aac] = &outs[..] else {
        panic!("two tracks: {}", outs.len())
    };
    assert_eq!((opus.codec, aac.codec), (AudioCodec::Opus, AudioCodec::Aac));
    assert_eq!(
        opus.duration_samples_48k, aac.duration_samples_48k,
        "same input, same duration"
    );
    let CodecConfig::Aac {
        channels,
        sample_rate,
        priming,
        ..
    } = aac.track.codec
    else {
        panic!("not AAC: {:?}", aac.track.codec)
    };
    assert_eq!((channels, sample_rate, priming), (2, 48_000, 1024));
    assert_eq!(
        vod_cmaf::codec_string(&aac.track.codec).expect("codec string"),
        "mp4a.40.2"
    );
    // 1024-sample packets grouped per 1 s segment on the 48 kHz grid, covering priming + input.
    let mut t = 0;
    for (k, s) in aac.segments.iter().enumerate() {
        assert_eq!((s.number as usize, s.base_media_decode_time), (k, t));
        assert!(s.base_media_decode_time >= (k as u64 * 48_000) && s.samples.iter().all(|x| x.duration == 1024));
        t += 1024 * s.samples.len() as u64;
    }
    assert!(
        t >= aac.duration_samples_48k + 1024,
        "packets cover priming + input: {t}"
    );

    // Both tracks muxed as the platform stores them: ffmpeg presents each (the edit list skips AAC's priming and
    // Opus's pre-skip) at the input's length, with every burst where the source has it. libopus agrees for Opus.
    let expected: Vec<usize> = (0..4).map(|k| 24_000 + k * 48_000).collect();
    let libopus: Vec<f32> = decode_opus(opus).chunks_exact(2).map(|c| (c[0] + c[1]) / 2.0).collect();
    for (name, out) in [("Opus", opus), ("AAC", aac)] {
        let file = work_dir().join(format!("bursts-{name}.mp4"));
        let segs: Vec<&SegmentSamples> = out.segments.iter().collect();
        write_cmaf(&file, &out.track, &segs);
        let pcm = vod_testkit::presented_pcm(&file.to_string_lossy(), &[]);
        assert!(
            pcm.len().abs_diff(out.duration_samples_48k as usize) <= 1024,
            "{name} is presented at the input's length: {} vs {}",
            pcm.len(),
            out.duration_samples_48k
        );
        let mut runs = vec![(name, vod_testkit::onsets(&pcm))];
        if name == "Opus" {
            runs.push(("Opus by libopus", vod_testkit::onsets(&libopus)));
        }
        for (name, got) in runs {
            assert_eq!(got.len(), expected.len(), "{name} bursts: {got:?}");
            for (g, e) in got.iter().zip(&expected) {
                // Within 1 ms (48 samples).
                assert!(g.abs_diff(*e) <= 48, "{name}: a burst at {g}, the source's at {e}");
            }
        }
    }
}

#[test]
fn audio_wav_mono_44k_and_surround_downmix() {
    let wav = mono44_wav();
    let out = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus],
        source: source_file(&wav),
        bitrate_kbps: 64,
        channels: 1,
        segment_duration: 2.0,
    })
    .expect("mono wav")
    .remove(0);
    check_audio(&out, 1, 3.0);
    assert!(matches!(
        out.track.codec,
        CodecConfig::Opus {
            channels: 1,
            input_sample_rate: 44_100,
            ..
        }
    ));
    let surround = generated(
        "surround.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000",
            "-t",
            "2",
            "-ac",
            "6",
            "-c:a",
            "flac",
        ],
    );
    let out = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus],
        source: source_file(&surround),
        bitrate_kbps: 96,
        channels: 2,
        segment_duration: 1.0,
    })
    .expect("5.1 downmix")
    .remove(0);
    check_audio(&out, 2, 2.0);
    assert!(matches!(
        encode_audio(&AudioRequest {
            streams: &[],
            language: None,
            codecs: &[AudioCodec::Opus],
            source: source_file(&surround),
            bitrate_kbps: 96,
            channels: 6,
            segment_duration: 1.0
        }),
        Err(EncodeError::InvalidRequest(_))
    ));
}

/// Sprite sheets hold the frame shown at each time (compared with ffmpeg's own `fps`+`tile` sheet of the same
/// times), posters decode at their size, and bad requests are errors.
#[test]
fn sprite_sheets_and_posters() {
    let src = source_mp4();
    let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    let req = ThumbnailRequest {
        source: source_file(&src),
        times: &times,
        tile: (80, 60),
        columns: 3,
        rows: 2,
        rotation: 0,
        threads: 2,
    };
    let sheet = sprite_sheet(&req).expect("sheet");
    let ours = work_dir().join("sheet.jpg");
    std::fs::write(&ours, &sheet).expect("write");
    assert_eq!(
        ffprobe(&ours, "stream=codec_name,width,height"),
        "mjpeg,240,120",
        "one 3×2 sheet of 80×60 tiles"
    );
    // ffmpeg's sheet of frames 0, 25, 50… (the times at 25 fps).
    let reference = generated(
        "sheet-ref.png",
        &[
            "-i",
            &src.to_string_lossy(),
            "-vf",
            "select='not(mod(n\\,25))',scale=80:60:flags=bicubic,tile=3x2",
            "-fps_mode",
            "passthrough",
            "-frames:v",
            "1",
        ],
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(&ours)
        .arg("-i")
        .arg(&reference)
        .args([
            "-lavfi",
            "[0:v]format=yuv420p[a];[1:v]format=yuv420p[b];[a][b]psnr",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    let db: f64 = err
        .split("average:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no PSNR: {err}"));
    assert!(
        db > 30.0,
        "the sheet shows the frames at its times: PSNR {db:.2} dB against ffmpeg's"
    );

    // A later time seeks (over DECODE_ON_SECS ahead), a poster too.
    let far = sprite_sheet(&ThumbnailRequest {
        times: &[0.0, 5.5],
        ..req.clone()
    })
    .expect("seeking sheet");
    assert!(!far.is_empty());
    let poster = poster(source_file(&src), 2.0, (320, 240), 0).expect("poster");
    let file = work_dir().join("poster.jpg");
    std::fs::write(&file, &poster).expect("write");
    assert_eq!(ffprobe(&file, "stream=codec_name,width,height"), "mjpeg,320,240");

    for bad in [
        ThumbnailRequest {
            times: &[],
            ..req.clone()
        },
        ThumbnailRequest {
            tile: (81, 60),
            ..req.clone()
        },
        ThumbnailRequest {
            times: &[1.0, 0.5],
            ..req.clone()
        },
        ThumbnailRequest {
            columns: 1,
            rows: 1,
            ..req.clone()
        },
        ThumbnailRequest {
            times: &[f64::NAN],
            ..req.clone()
        },
    ] {
        assert!(
            matches!(sprite_sheet(&bad), Err(EncodeError::InvalidRequest(_))),
            "{bad:?}"
        );
    }
    assert!(sprite_sheet(&ThumbnailRequest {
        source: source_file(&work_dir().join("missing.mp4")),
        ..req.clone()
    })
    .is_err());
}

#[test]
fn hostile_inputs_are_errors() {
    let dir = work_dir();
    let rungs = ladder();
    let random = dir.join("random.bin");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&random, &bytes).expect("write");
    assert!(encode_video_chunk(&request(&random, &rungs, 0, 1)).is_err());
    assert!(encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus],
        source: source_file(&random),
        bitrate_kbps: 96,
        channels: 2,
        segment_duration: 1.0
    })
    .is_err());

    let full = std::fs::read(source_mp4()).expect("read");
    for cut in [full.len() / 2, full.len() - 1000, 100] {
        let truncated = dir.join(format!("truncated-{cut}.mp4"));
        std::fs::write(&truncated, &full[..cut]).expect("write");
        let _ = encode_video_chunk(&request(&truncated, &rungs, 0, 1));
        let _ = encode_audio(&AudioRequest {
            streams: &[],
            language: None,
            codecs: &[AudioCodec::Opus],
            source: source_file(&truncated),
            bitrate_kbps: 96,
            channels: 2,
            segment_duration: 1.0,
        });
    }
    let truncated = dir.join(format!("truncated-{}.mp4", full.len() / 2));
    assert!(
        encode_video_chunk(&request(&truncated, &rungs, 0, 1)).is_err(),
        "moov at the end is cut off"
    );

    // Corrupt bytes in the middle of the media data: decoding goes on or fails, but never panics.
    let mut damaged = full.clone();
    for i in (full.len() / 4..full.len() * 3 / 4).step_by(97) {
        damaged[i] ^= 0x5a;
    }
    let damaged_path = dir.join("damaged.mp4");
    std::fs::write(&damaged_path, &damaged).expect("write");
    let _ = encode_video_chunk(&request(&damaged_path, &rungs, 0, 3));
    let _ = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[AudioCodec::Opus],
        source: source_file(&damaged_path),
        bitrate_kbps: 96,
        channels: 2,
        segment_duration: 1.0,
    });

    let video_only = generated(
        "video-only.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
            "-t",
            "1",
            "-c:v",
            "libx264",
        ],
    );
    assert!(matches!(
        encode_audio(&AudioRequest {
            streams: &[],
            language: None,
            codecs: &[AudioCodec::Opus],
            source: source_file(&video_only),
            bitrate_kbps: 96,
            channels: 2,
            segment_duration: 1.0
        }),
        Err(EncodeError::NoAudio)
    ));
    let wav = mono44_wav();
    assert!(matches!(
        encode_video_chunk(&request(&wav, &rungs, 0, 1)),
        Err(EncodeError::NoVideo)
    ));
    assert!(matches!(
        encode_video_chunk(&request(&dir.join("missing.mp4"), &rungs, 0, 1)),
        Err(EncodeError::Io(_))
    ));
}

/// Issue 15 item 7: the encoder opens a source only as the probe accepted it — its demuxer forced (no format
/// detection), local files only, and the stream's codec the accepted one. Before, libavformat detected the format
/// itself, so a file accepted as one thing was decoded as whatever its bytes said.
#[test]
fn sources_open_only_as_the_probe_accepted_them() {
    let src = source_mp4();
    let with = |demuxer: &str, video: &str, audio: &str| InputFormat {
        demuxer: demuxer.into(),
        video_codecs: vec![video.into()],
        audio_codecs: vec![audio.into()],
    };
    let open = |f: &InputFormat| VideoSource::open(SourceFile { path: &src, format: f }, 1).map(|_| ());
    open(&with("mov", "h264", "aac")).expect("opens as probed");
    let err = |r: Result<(), EncodeError>| r.expect_err("refused").to_string();
    // Another container than the one accepted: the forced demuxer does not read it.
    assert!(
        open(&with("yuv4mpegpipe", "h264", "aac")).is_err(),
        "an MP4 is not opened as Y4M"
    );
    assert!(
        open(&with("matroska", "h264", "aac")).is_err(),
        "an MP4 is not opened as Matroska"
    );
    assert!(err(open(&with("no-such-demuxer", "h264", "aac"))).contains("no demuxer"));
    // Another codec than the one accepted.
    let m = err(open(&with("mov", "hevc", "aac")));
    assert!(m.contains("h264") && m.contains("hevc"), "{m}");
    let m = err(crate::audio::decode_pcm(&PcmRequest {
        source: SourceFile {
            path: &src,
            format: &with("mov", "h264", "opus"),
        },
        sample_rate: 16_000,
        start_secs: 0.0,
        end_secs: 1.0,
    })
    .map(|_| ()));
    assert!(m.contains("aac") && m.contains("opus"), "{m}");
    // No protocol but local files: a URL is not a file.
    let url = std::path::Path::new("http://127.0.0.1:9/x.mp4");
    assert!(VideoSource::open(
        SourceFile {
            path: url,
            format: &with("mov", "h264", "aac")
        },
        1
    )
    .is_err());
}

/// A source file with the format ffprobe finds in it (a probe's verdict); unreadable files are offered as MP4.
fn source_file(path: &Path) -> SourceFile<'_> {
    let (demuxer, video_codecs, audio_codecs) =
        vod_testkit::input_format_of(path).unwrap_or_else(|| ("mov".into(), vec!["h264".into()], vec!["aac".into()]));
    let format = Box::leak(Box::new(InputFormat {
        demuxer,
        video_codecs,
        audio_codecs,
    }));
    SourceFile { path, format }
}

/// 2 s of a Matroska file with three mono PCM streams: 440 Hz, silence, 1 kHz (sines at ffmpeg's 1/8 amplitude).
fn three_mono_mkv() -> PathBuf {
    generated(
        "three-mono.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=2",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=channel_layout=mono:sample_rate=48000:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000:duration=2",
            "-map",
            "0:a",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:a",
            "pcm_s16le",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:2",
            "language=fre",
        ],
    )
}

/// The energy of `pcm` (interleaved, `channels`) per channel.
fn channel_rms(pcm: &[f32], channels: usize) -> Vec<f64> {
    (0..channels)
        .map(|c| rms(&pcm.iter().skip(c).step_by(channels).copied().collect::<Vec<_>>()))
        .collect()
}

#[test]
fn chosen_audio_streams_and_mono_pairs_mixed_to_stereo() {
    let src = three_mono_mkv();
    let encode = |streams: &[u32], channels: u8| {
        encode_audio(&AudioRequest {
            streams,
            language: Some("fre"),
            codecs: &[AudioCodec::Opus],
            source: source_file(&src),
            bitrate_kbps: 96,
            channels,
            segment_duration: 1.0,
        })
        .expect("audio")
        .remove(0)
    };
    // Streams 0 + 1 as left + right: the tone on the left, silence on the right.
    let paired = encode(&[0, 1], 2);
    check_audio(&paired, 2, 2.0);
    assert_eq!(paired.track.language, "fre");
    let levels = channel_rms(&decode_opus(&paired), 2);
    assert!(levels[0] > 0.05 && levels[1] < 0.001, "left/right {levels:?}");
    // Streams 1 + 2: silence on the left, the 1 kHz tone on the right.
    let levels = channel_rms(&decode_opus(&encode(&[1, 2], 2)), 2);
    assert!(levels[0] < 0.001 && levels[1] > 0.05, "left/right {levels:?}");
    // The third stream alone, and the pair averaged to mono (half the level of the tone alone).
    let alone = rms(&decode_opus(&encode(&[2], 1)));
    let averaged = rms(&decode_opus(&encode(&[1, 2], 1)));
    assert!(
        alone > 0.05 && (averaged / alone - 0.5).abs() < 0.05,
        "{alone} vs {averaged}"
    );
    // A stream the source does not have, and three streams, are refused.
    for streams in [&[3][..], &[0, 1, 2]] {
        let err = encode_audio(&AudioRequest {
            streams,
            language: None,
            codecs: &[AudioCodec::Opus],
            source: source_file(&src),
            bitrate_kbps: 96,
            channels: 2,
            segment_duration: 1.0,
        })
        .unwrap_err();
        assert!(matches!(err, EncodeError::InvalidRequest(_)), "{err}");
    }
}

/// 2 s of 10-bit HDR10 HEVC (BT.2020, PQ) at 320×240, 25 fps, in MP4.
fn hdr10_hevc_mp4() -> PathBuf {
    generated(
        "hdr10.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:\
             master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400",
            "-color_primaries",
            "bt2020",
            "-color_trc",
            "smpte2084",
            "-colorspace",
            "bt2020nc",
            "-tag:v",
            "hvc1",
        ],
    )
}

#[test]
fn ten_bit_sources_keep_ten_bits_and_their_colour_in_av1_and_h264_is_tone_mapped_sdr() {
    let src = hdr10_hevc_mp4();
    let full_size = |name: &str, codec| Rung {
        name: name.into(),
        width: 320,
        height: 240,
        bitrate_kbps: 800,
        codec,
    };
    let h264 = VideoCodec::H264 {
        preset: X264Preset::Veryfast,
    };
    let rungs = vec![
        full_size("240p", VideoCodec::Av1 { speed: 10 }),
        full_size("240p-h264", h264),
    ];
    let mut req = request(&src, &rungs, 0, 2);
    req.total_frames = 50;
    let out = encode_video_chunk(&req).expect("chunk");
    // BT.2020 PQ, and the SEI's mastering display (x265's G, B, R order read as R, G, B) and light levels.
    let hdr10 = vod_cmaf::Colour {
        primaries: 9,
        transfer: 16,
        matrix: 9,
        full_range: false,
        mastering: Some(vod_cmaf::MasteringDisplay {
            primaries: [(34000, 16000), (13250, 34500), (7500, 3000)],
            white_point: (15635, 16450),
            max_luminance: 10_000_000,
            min_luminance: 1,
        }),
        light: Some(vod_cmaf::ContentLight {
            max_cll: 1000,
            max_fall: 400,
        }),
    };
    for chunk in &out {
        let segs: Vec<&SegmentSamples> = chunk.segments.iter().collect();
        let cmaf = work_dir().join(format!("hdr10-{}.mp4", chunk.rung));
        write_cmaf(&cmaf, &chunk.track, &segs);
        let codec = vod_cmaf::codec_string(&chunk.track.codec).expect("codec string");
        let stream = vod_testkit::ffprobe(&[
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=pix_fmt,color_primaries,color_transfer,color_space,nb_read_frames",
            cmaf.to_str().expect("path"),
        ]);
        let s = &stream["streams"][0];
        if let CodecConfig::Av1 { colour, .. } = &chunk.track.codec {
            assert_eq!(*colour, Some(hdr10));
            assert!(
                codec.starts_with("av01.0.") && codec.ends_with(".10.0.110.09.16.09.0"),
                "{codec}"
            );
            assert_eq!(s["pix_fmt"], "yuv420p10le", "{stream}");
            // The `mdcv` and `clli` boxes, as ffmpeg reads them back.
            let side = vod_testkit::ffprobe(&["-show_streams", "-select_streams", "v:0", cmaf.to_str().expect("path")]);
            let data = side["streams"][0]["side_data_list"].to_string();
            assert!(
                data.contains("Mastering display metadata")
                    && data.contains("\"max_luminance\":\"10000000/10000\"")
                    && data.contains("\"max_content\":1000"),
                "{side}"
            );
            assert_eq!(
                (&s["color_primaries"], &s["color_transfer"], &s["color_space"]),
                (&"bt2020".into(), &"smpte2084".into(), &"bt2020nc".into()),
                "{stream}"
            );
        } else {
            assert!(codec.starts_with("avc1.64"), "{codec}");
            assert_eq!(s["pix_fmt"], "yuv420p", "{stream}");
            // Tone-mapped: closer to ffmpeg's own HDR → SDR conversion (zscale to linear light, the Hable tone
            // curve, BT.709) than the same frames converted without tone mapping are. (The curves differ: ours is
            // BT.2390's; measured 17.1 dB against 14.6 dB, and alike against ffmpeg's Möbius, Reinhard and clip.)
            let reference = generated(
                "hdr10-sdr-hable.y4m",
                &[
                    "-i",
                    src.to_str().expect("path"),
                    "-vf",
                    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,\
                     zscale=t=bt709:m=bt709:r=tv,format=yuv420p",
                ],
            );
            let naive = generated(
                "hdr10-naive.y4m",
                &["-i", src.to_str().expect("path"), "-vf", "format=yuv420p"],
            );
            let ours = vod_testkit::psnr(&cmaf, &reference, 320, 240);
            let untouched = vod_testkit::psnr(&naive, &reference, 320, 240);
            eprintln!("PSNR against ffmpeg's tone mapping: ours {ours:.1} dB, without tone mapping {untouched:.1} dB");
            assert!(ours > untouched + 2.0, "ours {ours:.1} dB, untouched {untouched:.1} dB");
            // The poster (as the thumbnails) is tone-mapped the same way: the first frame against the reference's
            // (measured 14.5 dB against 12.9 dB; both JPEGs, so the margin is smaller).
            let poster = work_dir().join("hdr10-poster.jpg");
            std::fs::write(
                &poster,
                crate::poster(source_file(&src), 0.0, (320, 240), 0).expect("poster"),
            )
            .expect("write");
            let naive_poster = generated(
                "hdr10-naive-poster.jpg",
                &["-i", src.to_str().expect("path"), "-frames:v", "1"],
            );
            let (ours, untouched) = (
                vod_testkit::psnr(&poster, &reference, 320, 240),
                vod_testkit::psnr(&naive_poster, &reference, 320, 240),
            );
            eprintln!("poster PSNR: ours {ours:.1} dB, without tone mapping {untouched:.1} dB");
            assert!(
                ours > untouched + 1.0,
                "poster: ours {ours:.1} dB, untouched {untouched:.1} dB"
            );
        }
        assert_eq!(s["nb_read_frames"], "50", "{}: {stream}", chunk.rung);
    }
}
