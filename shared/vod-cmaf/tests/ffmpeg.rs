//! Real-client tests: AV1 and Opus samples made by ffmpeg at test time, muxed by this crate, decoded by ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mp4_atom::{Any, Atom, Codec, Decode, Moov, StszSamples};
use vod_cmaf::{
    codec_string, init_segment, media_segment, progressive_mp4, segment_index, CodecConfig, Sample, SegmentIndexEntry,
    TrackConfig,
};

const FRAMES: usize = 50; // 2 s at 25 fps
const GOP: usize = 25;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vod-cmaf-{}-{name}", std::process::id()))
}

use vod_testkit::run;

/// A 2 s 320x240 AV1 (libaom, key frame every 25 frames) + stereo Opus MP4, made once per test run.
fn source() -> &'static Path {
    static SOURCE: OnceLock<PathBuf> = OnceLock::new();
    SOURCE.get_or_init(|| {
        vod_testkit::synth_file(
            "320x240",
            25,
            2,
            &[
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-g",
                "25",
                "-keyint_min",
                "25",
                "-b:v",
                "200k",
                "-c:a",
                "libopus",
                "-b:a",
                "64k",
                "-ac",
                "2",
            ],
            &tmp("source.mp4"),
        )
    })
}

/// Test-only reader: every track of a non-fragmented MP4 as (config, samples), using mp4-atom's moov parser.
fn read_tracks(path: &Path) -> Vec<(TrackConfig, Vec<Sample>)> {
    let file = std::fs::read(path).unwrap();
    let mut buf = file.as_slice();
    let mut moov: Option<Moov> = None;
    while !buf.is_empty() {
        if let Any::Moov(m) = Any::decode(&mut buf).unwrap() {
            moov = Some(m);
        }
    }
    let moov = moov.expect("moov");
    moov.trak
        .iter()
        .map(|trak| {
            let stbl = &trak.mdia.minf.stbl;
            let codec = match &stbl.stsd.codecs[0] {
                Codec::Av01(av01) => {
                    let mut av1c = Vec::new();
                    av01.av1c.encode_body(&mut av1c).unwrap();
                    CodecConfig::Av1 {
                        width: av01.visual.width,
                        height: av01.visual.height,
                        av1c,
                        colour: None,
                    }
                }
                Codec::Opus(opus) => CodecConfig::Opus {
                    channels: opus.dops.output_channel_count,
                    pre_skip: opus.dops.pre_skip,
                    input_sample_rate: opus.dops.input_sample_rate,
                },
                other => panic!("unexpected codec {other:?}"),
            };
            let sizes: Vec<u32> = match &stbl.stsz.samples {
                StszSamples::Different { sizes } => sizes.clone(),
                StszSamples::Identical { count, size } => vec![*size; *count as usize],
            };
            let chunk_offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
                (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
                (_, Some(co64)) => co64.entries.clone(),
                _ => panic!("no chunk offsets"),
            };
            let durations: Vec<u32> = stbl
                .stts
                .entries
                .iter()
                .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize))
                .collect();
            let offsets: Vec<i32> = match &stbl.ctts {
                Some(ctts) => ctts
                    .entries
                    .iter()
                    .flat_map(|e| std::iter::repeat_n(e.sample_offset as i32, e.sample_count as usize))
                    .collect(),
                None => vec![0; sizes.len()],
            };
            let mut samples = Vec::new();
            for (chunk, &offset) in chunk_offsets.iter().enumerate() {
                let chunk_number = chunk as u32 + 1;
                let per_chunk = stbl
                    .stsc
                    .entries
                    .iter()
                    .rev()
                    .find(|e| e.first_chunk <= chunk_number)
                    .unwrap()
                    .samples_per_chunk;
                let mut pos = offset as usize;
                for _ in 0..per_chunk {
                    let i = samples.len();
                    let size = sizes[i] as usize;
                    samples.push(Sample {
                        data: file[pos..pos + size].to_vec(),
                        duration: durations[i],
                        is_sync: stbl.stss.as_ref().is_none_or(|s| s.entries.contains(&(i as u32 + 1))),
                        composition_offset: offsets[i],
                    });
                    pos += size;
                }
            }
            assert_eq!(samples.len(), sizes.len());
            let config = TrackConfig {
                track_id: trak.tkhd.track_id,
                timescale: trak.mdia.mdhd.timescale,
                codec,
                language: "und".into(),
            };
            (config, samples)
        })
        .collect()
}

fn source_track(video: bool) -> (TrackConfig, Vec<Sample>) {
    read_tracks(source())
        .into_iter()
        .find(|(c, _)| matches!(c.codec, CodecConfig::Av1 { .. }) == video)
        .expect("track")
}

/// init + (optionally sidx) + one media segment per `per_segment` samples.
fn fragmented(track: &TrackConfig, samples: &[Sample], per_segment: usize, with_sidx: bool) -> Vec<u8> {
    let mut segments = Vec::new();
    let mut entries = Vec::new();
    let mut start = 0u64;
    for (i, group) in samples.chunks(per_segment).enumerate() {
        let seg = media_segment(track, i as u32 + 1, start, group).unwrap();
        let entry = SegmentIndexEntry::for_segment(i as u32 + 1, start, group, &seg);
        start = entry.end();
        entries.push(entry);
        segments.push(seg);
    }
    let mut out = init_segment(track).unwrap();
    if with_sidx {
        out.extend(segment_index(track, &entries).unwrap());
    }
    for seg in segments {
        out.extend(seg);
    }
    out
}

struct Probe {
    codec: String,
    width: Option<u32>,
    height: Option<u32>,
    frames: usize,
    key_frames: Vec<usize>,
    /// Decoded duration in seconds: audio samples / rate; video last pts - first pts + one frame.
    duration: f64,
}

/// Decodes every frame of each stream with ffprobe.
fn probe(path: &Path) -> Vec<Probe> {
    let (out, stderr) = run(Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_streams", "-show_frames"])
        .arg(path));
    assert!(stderr.trim().is_empty(), "ffprobe complained about {path:?}: {stderr}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let streams = json["streams"].as_array().unwrap();
    let frames = json["frames"].as_array().unwrap();
    streams
        .iter()
        .map(|s| {
            let index = s["index"].as_u64().unwrap();
            let own: Vec<_> = frames
                .iter()
                .filter(|f| f["stream_index"].as_u64() == Some(index))
                .collect();
            Probe {
                codec: s["codec_name"].as_str().unwrap().to_string(),
                width: s["width"].as_u64().map(|v| v as u32),
                height: s["height"].as_u64().map(|v| v as u32),
                frames: own.len(),
                key_frames: own
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f["key_frame"].as_u64() == Some(1))
                    .map(|(i, _)| i)
                    .collect(),
                duration: decoded_duration(s, &own),
            }
        })
        .collect()
}

fn decoded_duration(stream: &serde_json::Value, frames: &[&serde_json::Value]) -> f64 {
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    if stream["codec_type"] == "audio" {
        let rate = num(&stream["sample_rate"]).unwrap();
        frames.iter().map(|f| f["nb_samples"].as_f64().unwrap()).sum::<f64>() / rate
    } else {
        let (n, d) = stream["avg_frame_rate"].as_str().unwrap().split_once('/').unwrap();
        let frame = d.parse::<f64>().unwrap() / n.parse::<f64>().unwrap();
        let pts: Vec<f64> = frames.iter().filter_map(|f| num(&f["pts_time"])).collect();
        assert_eq!(pts.len(), frames.len(), "every frame has a pts");
        let first = pts.iter().cloned().fold(f64::INFINITY, f64::min);
        let last = pts.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        last - first + frame
    }
}

/// Full decode with ffmpeg; stderr must stay empty at level error.
fn decode_all(path: &Path) {
    let (_, stderr) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]));
    assert!(stderr.trim().is_empty(), "ffmpeg decode errors for {path:?}: {stderr}");
}

/// MD5 of every decoded video frame (the hash column of ffmpeg's framemd5).
fn video_frame_hashes(path: &Path) -> Vec<String> {
    let (out, _) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"]));
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

#[test]
fn fragmented_av1_decodes_fully() {
    let (track, samples) = source_track(true);
    assert_eq!(samples.len(), FRAMES);
    // As rav1e emits them: every temporal unit led by a temporal delimiter OBU, which the muxer must drop.
    let with_delimiters: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            data: [&[0x12, 0x00][..], &s.data].concat(),
            ..s.clone()
        })
        .collect();
    assert_eq!(
        fragmented(&track, &with_delimiters, GOP, false),
        fragmented(&track, &samples, GOP, false),
        "temporal delimiters are dropped"
    );
    for with_sidx in [false, true] {
        let path = tmp(&format!("av1-frag-{with_sidx}.mp4"));
        let input = if with_sidx { &with_delimiters } else { &samples };
        let bytes = fragmented(&track, input, GOP, with_sidx);
        std::fs::write(&path, bytes).unwrap();
        decode_all(&path);
        let p = probe(&path);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].codec, "av1");
        assert_eq!((p[0].width, p[0].height), (Some(320), Some(240)));
        assert_eq!(p[0].frames, FRAMES);
        assert_eq!(p[0].key_frames, vec![0, GOP]);
        assert!((p[0].duration - 2.0).abs() < 0.041, "duration {}", p[0].duration);
        let hashes = video_frame_hashes(&path);
        assert_eq!(hashes, video_frame_hashes(source()), "same pictures as the source");
        // Seeking to the second segment lands on its key frame and decodes the rest of the pictures.
        let (out, _) = run(Command::new("ffmpeg")
            .args(["-v", "error", "-ss", "1.0", "-i"])
            .arg(&path)
            .args(["-map", "0:v", "-f", "framemd5", "-"]));
        let seeked: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
            .collect();
        assert_eq!(seeked, hashes[GOP..].to_vec());
    }
}

#[test]
fn fragmented_opus_decodes_fully() {
    let (track, samples) = source_track(false);
    let path = tmp("opus-frag.mp4");
    std::fs::write(&path, fragmented(&track, &samples, 50, true)).unwrap();
    decode_all(&path);
    let p = probe(&path);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].codec, "opus");
    assert_eq!(p[0].frames, samples.len());
    assert!((p[0].duration - 2.0).abs() < 0.041, "duration {}", p[0].duration);
}

#[test]
fn progressive_av1_and_opus_decode_fully() {
    let video = source_track(true);
    let audio = source_track(false);
    let audio_packets = audio.1.len();
    let audio_samples = audio.1.clone();
    let path = tmp("progressive.mp4");
    let bytes = progressive_mp4(&[video.clone(), audio]).unwrap();
    // Faststart: moov before mdat.
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat);
    std::fs::write(&path, bytes).unwrap();
    decode_all(&path);
    let p = probe(&path);
    assert_eq!(p.len(), 2);
    let v = p.iter().find(|s| s.codec == "av1").expect("av1 stream");
    let a = p.iter().find(|s| s.codec == "opus").expect("opus stream");
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    assert_eq!(v.frames, FRAMES);
    assert_eq!(v.key_frames, vec![0, GOP]);
    assert_eq!(a.frames, audio_packets);
    assert!((v.duration - 2.0).abs() < 0.041, "video duration {}", v.duration);
    assert!(
        (a.duration - v.duration).abs() < 0.041,
        "audio {} vs video {}",
        a.duration,
        v.duration
    );
    assert_eq!(
        video_frame_hashes(&path),
        video_frame_hashes(source()),
        "same pictures as the source"
    );

    // The file reads back to the same samples (stsc/stco/stsz/stts/stss agree with the mdat layout).
    let back = read_tracks(&path);
    assert_eq!(back[0].1, video.1);
    assert_eq!(back[1].1, audio_samples);
}

/// A progressive file laid out over stored runs (as the packager serves it from CMAF segments): its head followed by
/// the runs' bytes in the layout's order is a faststart MP4 with the same samples as the one built in memory.
#[test]
fn progressive_layout_over_runs_decodes_like_the_built_file() {
    use vod_cmaf::sample::{strip_av1_temporal_delimiters, SampleRow};
    use vod_cmaf::{progressive_layout, StoredTrack};
    let tracks = [source_track(true), source_track(false)];
    // Stored payloads (as segments hold them: AV1 without temporal delimiters), cut in runs of uneven lengths.
    let stored: Vec<Vec<Vec<u8>>> = tracks
        .iter()
        .map(|(c, samples)| {
            samples
                .iter()
                .map(|s| match c.codec {
                    CodecConfig::Av1 { .. } => strip_av1_temporal_delimiters(&s.data).into_owned(),
                    _ => s.data.clone(),
                })
                .collect()
        })
        .collect();
    let run_len = [GOP, 17];
    let rows: Vec<Vec<SampleRow>> = tracks
        .iter()
        .enumerate()
        .map(|(i, (_, samples))| {
            samples
                .iter()
                .zip(&stored[i])
                .map(|(s, d)| SampleRow {
                    size: d.len() as u32,
                    duration: s.duration,
                    is_sync: s.is_sync,
                    composition_offset: s.composition_offset,
                })
                .collect()
        })
        .collect();
    let runs: Vec<Vec<u32>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| r.chunks(run_len[i]).map(|c| c.len() as u32).collect())
        .collect();
    let stored_tracks: Vec<StoredTrack> = tracks
        .iter()
        .enumerate()
        .map(|(i, (config, _))| StoredTrack {
            config: config.clone(),
            rows: &rows[i],
            runs: &runs[i],
        })
        .collect();
    let layout = progressive_layout(&stored_tracks).unwrap();
    let mut bytes = layout.head.clone();
    for r in &layout.runs {
        assert_eq!(r.offset, bytes.len() as u64, "runs follow each other");
        let first = r.run * run_len[r.track];
        let n = stored_tracks[r.track].runs[r.run] as usize;
        for d in &stored[r.track][first..first + n] {
            bytes.extend_from_slice(d);
        }
    }
    assert_eq!(bytes.len() as u64, layout.size);
    let path = tmp("layout.mp4");
    std::fs::write(&path, &bytes).unwrap();
    decode_all(&path);
    let built = tmp("layout-built.mp4");
    std::fs::write(&built, progressive_mp4(&tracks).unwrap()).unwrap();
    assert_eq!(
        read_tracks(&path),
        read_tracks(&built),
        "same samples as the file built in memory"
    );
    assert_eq!(video_frame_hashes(&path), video_frame_hashes(source()));
    let p = probe(&path);
    let v = p.iter().find(|s| s.codec == "av1").expect("av1 stream");
    assert_eq!(v.frames, FRAMES);
    assert_eq!(v.key_frames, vec![0, GOP]);
}

#[test]
fn codec_strings_of_real_tracks() {
    let (video, _) = source_track(true);
    let (audio, _) = source_track(false);
    let (out, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=level,profile",
            "-of",
            "default=nw=1",
        ])
        .arg(source()));
    let level: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("level="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(out.contains("profile=Main"), "{out}");
    assert_eq!(codec_string(&video.codec).unwrap(), format!("av01.0.{level:02}M.08"));
    assert_eq!(codec_string(&audio.codec).unwrap(), "opus");
}
