//! `vod_package::encrypt` on real media: AV1 (rav1e, several tiles per frame) and Opus encoded by `vod-encode`,
//! muxed by `vod-cmaf` exactly as the platform stores renditions, then protected and judged by tools that are not
//! ours: ffmpeg decrypts (`-decryption_key`) and decodes every frame, mp4-atom re-reads the boxes, and cros-codecs'
//! AV1 parser locates the tiles that must be (and only be) encrypted.
//!
//! Needs `ffmpeg` and `ffprobe` on PATH (Debian's ffmpeg 5.1); a missing tool fails the test with a message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use mp4_atom::{Any, Decode, Moof};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use vod_cmaf::{init_segment, media_segment, TrackConfig};
use vod_encode::{encode_audio, encode_video_chunk, AudioRequest, Rung, SegmentSamples, VideoChunkRequest};
use vod_package::drm::{system, DrmId};
use vod_package::encrypt::{protect_init, protect_segment, EncryptError, Scheme};

const KEY: [u8; 16] = *b"0123456789abcdef";
const KID: [u8; 16] = [
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn work_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("encrypt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create work dir");
        dir
    })
    .clone()
}

fn tool(name: &str) -> Command {
    let ok = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{name}` is needed by this test and was not found on PATH (Debian: apt-get install ffmpeg)"
    );
    Command::new(name)
}

/// One track as the platform stores it: a clear init segment and numbered media segments.
struct Track {
    init: Vec<u8>,
    /// (segment number as used in URLs, 0-based; segment bytes)
    segments: Vec<(u32, Vec<u8>)>,
}

fn track(config: TrackConfig, segments: &[SegmentSamples]) -> Track {
    Track {
        init: init_segment(&config).expect("init segment"),
        segments: segments
            .iter()
            .map(|s| {
                let bytes =
                    media_segment(&config, s.number + 1, s.base_media_decode_time, &s.samples).expect("segment");
                (s.number, bytes)
            })
            .collect(),
    }
}

/// An AV1 fragmented MP4 made by ffmpeg with another encoder, split into init + one segment per moof/mdat pair.
fn ffmpeg_av1(name: &str, codec_args: &[&str]) -> Track {
    let path = work_dir().join(name);
    let out = tool("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=480x270:rate=30",
            "-t",
            "2",
            "-g",
            "30",
        ])
        .args(codec_args)
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof+skip_trailer"])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {codec_args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).expect("read");
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if &bytes[pos + 4..pos + 8] == b"moof" {
            starts.push(pos);
        }
        pos += size;
    }
    assert!(starts.len() >= 2, "{name}: several fragments");
    let init = bytes[..starts[0]].to_vec();
    starts.push(bytes.len());
    let segments = starts
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i as u32, bytes[w[0]..w[1]].to_vec()))
        .collect();
    Track { init, segments }
}

/// The configOBUs of the av1C box of an init segment (none in the empty av1C ffmpeg writes with `empty_moov`).
fn config_obus(init: &[u8]) -> Vec<u8> {
    let at = init.windows(4).position(|w| w == b"av1C").expect("av1C") - 4;
    let size = u32::from_be_bytes(init[at..at + 4].try_into().unwrap()) as usize;
    init.get(at + 12..at + size).unwrap_or_default().to_vec()
}

/// 4 s of testsrc2 + a sine, encoded by the platform: AV1 640x360 with 4 tiles (threads 4), Opus stereo, 2 s segments.
fn media() -> &'static (Track, Track) {
    static MEDIA: OnceLock<(Track, Track)> = OnceLock::new();
    MEDIA.get_or_init(|| {
        // Test runners that start one process per test (nextest) share one encode through a cache keyed by this
        // test binary's build time, so a rebuilt binary (new encoder or writer code) encodes afresh.
        let exe = std::env::current_exe().expect("test binary");
        let built = std::fs::metadata(&exe)
            .and_then(|m| m.modified())
            .expect("binary mtime");
        let stamp = built
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("encrypt-media-{stamp}"));
        if let (Some(video), Some(audio)) = (load_track(&cache, "video"), load_track(&cache, "audio")) {
            return (video, audio);
        }
        let media = encode_media();
        let tmp = work_dir().join("cache");
        save_track(&tmp, "video", &media.0);
        save_track(&tmp, "audio", &media.1);
        let _ = std::fs::rename(&tmp, &cache); // another process may have won the race: same content
        media
    })
}

fn save_track(dir: &Path, name: &str, t: &Track) {
    std::fs::create_dir_all(dir).expect("cache dir");
    std::fs::write(dir.join(format!("{name}.init")), &t.init).expect("write cache");
    for (n, bytes) in &t.segments {
        std::fs::write(dir.join(format!("{name}.{n}")), bytes).expect("write cache");
    }
}

fn load_track(dir: &Path, name: &str) -> Option<Track> {
    let init = std::fs::read(dir.join(format!("{name}.init"))).ok()?;
    let segments: Vec<(u32, Vec<u8>)> = (0..)
        .map_while(|n| std::fs::read(dir.join(format!("{name}.{n}"))).ok().map(|b| (n, b)))
        .collect();
    (!segments.is_empty()).then_some(Track { init, segments })
}

/// The 4 s test source (640x360 testsrc2 at 30 fps, H.264 + AAC), made once per process.
/// The clip's format as the probe accepts it: MP4 with H.264 and AAC.
fn clip_format() -> vod_encode::InputFormat {
    vod_encode::InputFormat {
        demuxer: "mov".into(),
        video_codecs: vec!["h264".into()],
        audio_codecs: vec!["aac".into()],
    }
}

fn source_clip() -> &'static Path {
    static SOURCE: OnceLock<PathBuf> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let source = work_dir().join("source.mp4");
        let out = tool("ffmpeg")
            .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi"])
            .args([
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "4",
                "-c:v",
                "libx264",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"])
            .arg(&source)
            .output()
            .expect("run ffmpeg");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        source
    })
}

/// The source's 360p rendition by `codec`, two 2 s segments, muxed as the platform stores it.
fn encode_rendition(codec: vod_encode::VideoCodec) -> Track {
    let rungs = [Rung {
        name: "360p".into(),
        width: 640,
        height: 360,
        bitrate_kbps: 1000,
        codec,
    }];
    let video = encode_video_chunk(&VideoChunkRequest {
        rotation: 0,
        source: vod_encode::SourceFile {
            path: source_clip(),
            format: &clip_format(),
        },
        frame_rate: (30, 1),
        segment_duration: 2.0,
        first_segment: 0,
        end_segment: 2,
        total_frames: 120,
        rungs: &rungs,
        threads: 4,
    })
    .expect("encode video")
    .remove(0);
    track(video.track, &video.segments)
}

fn encode_media() -> (Track, Track) {
    let video = encode_rendition(vod_encode::VideoCodec::Av1 { speed: 10 });
    (video, encode_audio_track(vod_encode::AudioCodec::Opus))
}

/// The source's audio by `codec`, stereo, 2 s segments, muxed as the platform stores it.
fn encode_audio_track(codec: vod_encode::AudioCodec) -> Track {
    let audio = encode_audio(&AudioRequest {
        streams: &[],
        language: None,
        codecs: &[codec],
        source: vod_encode::SourceFile {
            path: source_clip(),
            format: &clip_format(),
        },
        bitrate_kbps: 96,
        channels: 2,
        segment_duration: 2.0,
    })
    .expect("encode audio")
    .remove(0);
    track(audio.track, &audio.segments)
}

/// H.264 (x264 through the encoder seam): ffmpeg decrypts cenc and cbcs to the clear frames and fails without the
/// key; every slice NAL unit's length, header and first 32 bytes stay clear, non-slice units wholly clear, and
/// `cenc` protects whole blocks only.
#[test]
fn h264_decrypts_to_the_same_frames_with_ffmpeg() {
    let t = encode_rendition(vod_encode::VideoCodec::H264 {
        preset: vod_encode::X264Preset::Veryfast,
    });
    let clear = clear_file(&t, "h264-clear.mp4");
    let reference = framemd5(&clear, None).expect("clear H.264 decodes");
    assert_eq!(reference.len(), 120, "all frames");
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        check_with_ffmpeg(&t, scheme, "h264");
        let enc = protected_file(&t, scheme, &format!("h264-{scheme:?}.mp4"));
        let decrypted = framemd5(&enc, Some(&KEY)).unwrap_or_else(|| panic!("ffmpeg decrypts {scheme:?} H.264"));
        assert_eq!(decrypted, reference, "{scheme:?}: same frames after decryption");
        let (_, segments) = protect(&t, scheme);
        let mut protected_total = 0;
        for ((_, clear_seg), enc_seg) in t.segments.iter().zip(&segments) {
            let (_, clear_ranges) = samples_of(clear_seg);
            let (moof, _) = samples_of(enc_seg);
            let entries = senc_entries(&moof, if scheme == Scheme::Cenc { 8 } else { 0 });
            assert_eq!(entries.len(), clear_ranges.len());
            for ((_, subs), range) in entries.iter().zip(&clear_ranges) {
                let sample = &clear_seg[range.clone()];
                assert_eq!(subs.iter().map(|(c, p)| c + p).sum::<usize>(), sample.len());
                // Walk the NAL units and the subsamples together.
                let mut protected_ranges = Vec::new();
                let mut at = 0;
                for (c, p) in subs {
                    at += c;
                    if *p > 0 {
                        protected_ranges.push(at..at + p);
                        if scheme == Scheme::Cenc {
                            assert_eq!(p % 16, 0, "cenc protects whole blocks");
                        }
                    }
                    at += p;
                }
                let mut pos = 0;
                while pos < sample.len() {
                    let len = u32::from_be_bytes(sample[pos..pos + 4].try_into().unwrap()) as usize;
                    let unit = pos + 4..pos + 4 + len;
                    let slice = matches!(sample[unit.start] & 0x1f, 1..=5);
                    for r in &protected_ranges {
                        if r.start < unit.end && unit.start < r.end {
                            assert!(slice, "only slice NAL units are protected");
                            assert!(
                                r.start >= unit.start + 32 && r.end <= unit.end,
                                "head of the unit clear"
                            );
                        }
                    }
                    pos = unit.end;
                }
                protected_total += protected_ranges.iter().map(|r| r.len()).sum::<usize>();
            }
        }
        assert!(protected_total > 0, "{scheme:?} protects slice data");
    }
}

fn write(name: &str, parts: impl IntoIterator<Item = Vec<u8>>) -> PathBuf {
    let path = work_dir().join(name);
    std::fs::write(&path, parts.into_iter().flatten().collect::<Vec<u8>>()).expect("write");
    path
}

fn clear_file(t: &Track, name: &str) -> PathBuf {
    write(
        name,
        std::iter::once(t.init.clone()).chain(t.segments.iter().map(|s| s.1.clone())),
    )
}

fn protect(t: &Track, scheme: Scheme) -> (Vec<u8>, Vec<Vec<u8>>) {
    let psshs = [
        system(DrmId::ClearKey).pssh(&[KID], None, Scheme::Cenc).expect("pssh"),
        system(DrmId::Widevine).pssh(&[KID], None, Scheme::Cenc).expect("pssh"),
    ];
    let init = protect_init(&t.init, scheme, &KID, &psshs).expect("protect init");
    let segments = t
        .segments
        .iter()
        .map(|(n, s)| protect_segment(&t.init, s, scheme, &KEY, &KID, *n).expect("protect segment"))
        .collect();
    (init, segments)
}

fn protected_file(t: &Track, scheme: Scheme, name: &str) -> PathBuf {
    let (init, segments) = protect(t, scheme);
    write(name, std::iter::once(init).chain(segments))
}

/// ffmpeg's frame-by-frame MD5 of the decoded stream (None if ffmpeg fails), without the header comments.
///
/// The file is piped in, as a player streams it: from a seekable file, ffmpeg 5.1's mov demuxer pre-reads every
/// moof and then pairs the first fragment's samples with the last fragment's encryption info ("subsample size
/// exceeds the packet size left" on any file of several encrypted fragments, cenc or cbcs); read progressively it
/// pairs them right.
fn framemd5(file: &Path, key: Option<&[u8; 16]>) -> Option<Vec<String>> {
    let mut cmd = tool("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if let Some(key) = key {
        cmd.args(["-decryption_key", &hex(key)]);
    }
    let input = std::fs::File::open(file).expect("open media file");
    let out = cmd
        .stdin(input)
        .args(["-i", "pipe:0", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    if !out.status.success() {
        return None;
    }
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    Some(lines)
}

/// A parsed media segment: its moof and the byte range of every sample.
fn samples_of(segment: &[u8]) -> (Moof, Vec<std::ops::Range<usize>>) {
    let mut buf = segment;
    let mut moof = None;
    let mut moof_start = 0;
    while !buf.is_empty() {
        let at = segment.len() - buf.len();
        match Any::decode(&mut buf).expect("mp4-atom decodes every top-level box") {
            Any::Moof(m) => {
                moof = Some(m);
                moof_start = at;
            }
            Any::Styp(_) | Any::Mdat(_) => {}
            other => panic!("unexpected box {other:?}"),
        }
    }
    let moof = moof.expect("moof");
    let trun = &moof.traf[0].trun[0];
    let mut pos = moof_start + trun.data_offset.expect("data offset") as usize;
    let ranges = trun
        .samples
        .iter()
        .map(|e| {
            let r = pos..pos + e.size.expect("size") as usize;
            pos = r.end;
            r
        })
        .collect();
    (moof, ranges)
}

/// The senc entries of a protected segment: (IV, subsamples) per sample.
type SencEntry = (Vec<u8>, Vec<(usize, usize)>);

fn senc_entries(moof: &Moof, iv_size: usize) -> Vec<SencEntry> {
    let traf = &moof.traf[0];
    let Some(senc) = &traf.senc else { return Vec::new() };
    let d = &senc.data;
    let count = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let iv = d[at..at + iv_size].to_vec();
        at += iv_size;
        let mut subs = Vec::new();
        if senc.use_subsamples {
            let n = u16::from_be_bytes(d[at..at + 2].try_into().unwrap()) as usize;
            at += 2;
            for _ in 0..n {
                let clear = u16::from_be_bytes(d[at..at + 2].try_into().unwrap()) as usize;
                let protected = u32::from_be_bytes(d[at + 2..at + 6].try_into().unwrap()) as usize;
                subs.push((clear, protected));
                at += 6;
            }
        }
        out.push((iv, subs));
    }
    assert_eq!(at, d.len(), "senc entries fill the box");
    out
}

/// The tiles of every sample of a clear AV1 track, from cros-codecs (an independent parser): (start, end) in the
/// sample, in bitstream order.
fn reference_tiles(t: &Track) -> Vec<Vec<Vec<(usize, usize)>>> {
    use cros_codecs::codec::av1::parser::{ObuAction, ParsedObu, Parser};
    let obus = config_obus(&t.init);
    let mut parser = Parser::default();
    let mut config = &obus[..];
    while !config.is_empty() {
        let ObuAction::Process(obu) = parser.read_obu(config).expect("config OBU") else {
            panic!("dropped")
        };
        config = &config[obu.bytes_used..];
        parser.parse_obu(obu).expect("sequence header");
    }
    let mut out = Vec::new();
    for (_, segment) in &t.segments {
        let (_, ranges) = samples_of(segment);
        let mut per_segment = Vec::new();
        for r in ranges {
            let sample = &segment[r];
            let base = sample.as_ptr() as usize;
            let mut rest = sample;
            let mut tiles = Vec::new();
            while !rest.is_empty() {
                let ObuAction::Process(obu) = parser.read_obu(rest).expect("OBU") else {
                    panic!("dropped")
                };
                rest = &rest[obu.bytes_used..];
                match parser.parse_obu(obu).expect("parse OBU") {
                    ParsedObu::Frame(frame) => {
                        let data = frame.tile_group.obu.as_ref().as_ptr() as usize - base;
                        for tile in &frame.tile_group.tiles {
                            let start = data + tile.tile_offset as usize;
                            tiles.push((start, start + tile.tile_size as usize));
                        }
                        parser.ref_frame_update(&frame.header).expect("ref update");
                    }
                    ParsedObu::FrameHeader(header) => {
                        if header.show_existing_frame {
                            parser.ref_frame_update(&header).expect("ref update");
                        } else {
                            panic!("separate frame header and tile group OBUs: extend the oracle");
                        }
                    }
                    ParsedObu::TileGroup(_) => panic!("separate tile group OBUs: extend the oracle"),
                    _ => {}
                }
            }
            per_segment.push(tiles);
        }
        out.push(per_segment);
    }
    out
}

/// Decrypts a protected sample in place with its senc entry (the inverse of what the packager must do).
fn decrypt_sample(data: &mut [u8], scheme: Scheme, entry: &SencEntry, constant_iv: &[u8], pattern: (usize, usize)) {
    let whole = [(0usize, data.len())];
    let subs: &[(usize, usize)] = if entry.1.is_empty() { &whole } else { &entry.1 };
    let mut ctx = CipherCtx::new().unwrap();
    let mut pos = 0;
    match scheme {
        Scheme::Cenc => {
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&entry.0);
            ctx.decrypt_init(Some(Cipher::aes_128_ctr()), Some(&KEY), Some(&iv))
                .unwrap();
            for &(clear, protected) in subs {
                pos += clear;
                let plain = {
                    let mut out = vec![0u8; protected + 16];
                    let n = ctx.cipher_update(&data[pos..pos + protected], Some(&mut out)).unwrap();
                    out.truncate(n);
                    out
                };
                data[pos..pos + protected].copy_from_slice(&plain);
                pos += protected;
            }
        }
        Scheme::Cbcs => {
            for &(clear, protected) in subs {
                pos += clear;
                ctx.decrypt_init(Some(Cipher::aes_128_cbc()), Some(&KEY), Some(constant_iv))
                    .unwrap();
                ctx.set_padding(false);
                let blocks = protected / 16;
                let (crypt, skip) = if pattern.0 == 0 { (blocks, 0) } else { pattern };
                let mut b = 0;
                let mut p = pos;
                while b < blocks {
                    let n = crypt.min(blocks - b);
                    let mut out = vec![0u8; 16 * n + 16];
                    ctx.cipher_update(&data[p..p + 16 * n], Some(&mut out)).unwrap();
                    data[p..p + 16 * n].copy_from_slice(&out[..16 * n]);
                    p += 16 * n;
                    b += n;
                    let s = skip.min(blocks - b);
                    p += 16 * s;
                    b += s;
                }
                pos += protected;
            }
        }
    }
}

fn tenc_constant_iv(init: &[u8]) -> Vec<u8> {
    let at = init.windows(4).position(|w| w == b"tenc").expect("tenc");
    let body = &init[at + 4..];
    assert_eq!(body[0], 1, "cbcs tenc is version 1");
    let iv_size = body[4 + 3] as usize;
    assert_eq!(iv_size, 0, "cbcs: no per-sample IVs");
    let constant_size = body[4 + 4 + 16] as usize;
    assert_eq!(constant_size, 16);
    body[4 + 4 + 16 + 1..4 + 4 + 16 + 1 + 16].to_vec()
}

/// The OBUs of a sample: (header range incl. size field, payload range, type).
fn obu_list(sample: &[u8]) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>, u8)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < sample.len() {
        let h = sample[pos];
        let ext = usize::from(h & 4 != 0);
        let mut at = pos + 1 + ext;
        assert!(h & 2 != 0, "rav1e writes obu_size");
        let mut size = 0usize;
        for i in 0.. {
            let b = sample[at];
            size |= usize::from(b & 0x7f) << (7 * i);
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        out.push((pos..at, at..at + size, (h >> 3) & 15));
        pos = at + size;
    }
    out
}

/// Checks one protected AV1 track against the clear one: same boxes and sizes where they must be, OBU headers and
/// every non-tile byte clear, exactly the tile data the AV1-ISOBMFF rules name protected (per cros-codecs' tiles),
/// and our inverse restores the clear samples.
fn check_av1_layout(t: &Track, scheme: Scheme) -> (usize, usize) {
    let (init, segments) = protect(t, scheme);
    let tiles = reference_tiles(t);
    let constant_iv = if scheme == Scheme::Cbcs {
        tenc_constant_iv(&init)
    } else {
        Vec::new()
    };
    let iv_size = if scheme == Scheme::Cenc { 8 } else { 0 };
    let (mut multi_tile_samples, mut protected_bytes) = (0, 0);
    for (si, ((_, clear_seg), enc_seg)) in t.segments.iter().zip(&segments).enumerate() {
        let (_, clear_ranges) = samples_of(clear_seg);
        let (moof, enc_ranges) = samples_of(enc_seg);
        let traf = &moof.traf[0];
        assert_eq!(traf.saiz.len(), 1, "saiz");
        assert_eq!(traf.saio.len(), 1, "saio");
        assert_eq!(traf.saiz[0].sample_count as usize, enc_ranges.len());
        let entries = senc_entries(&moof, iv_size);
        assert_eq!(entries.len(), enc_ranges.len());
        // saio points at the first senc entry: the IV (cenc) or subsample count of sample 0.
        let moof_at = enc_seg.windows(4).position(|w| w == b"moof").unwrap() - 4;
        let aux = moof_at + traf.saio[0].offsets[0] as usize;
        let senc_at = enc_seg.windows(4).position(|w| w == b"senc").unwrap() - 4;
        assert_eq!(aux, senc_at + 16, "saio offset → first senc entry");
        for (i, (cr, er)) in clear_ranges.iter().zip(&enc_ranges).enumerate() {
            let clear = &clear_seg[cr.clone()];
            let enc = &enc_seg[er.clone()];
            assert_eq!(clear.len(), enc.len());
            let (iv, subs) = &entries[i];
            assert_eq!(iv.len(), iv_size);
            // Expected subsamples from the reference tiles.
            let mut expected = Vec::new();
            let mut clear_from = 0;
            for &(start, end) in &tiles[si][i] {
                let (ps, pl) = match scheme {
                    Scheme::Cbcs => (start, end - start),
                    Scheme::Cenc => ((end - (end - start) / 16 * 16), (end - start) / 16 * 16),
                };
                if pl > 0 {
                    expected.push((ps - clear_from, pl));
                    clear_from = end;
                }
            }
            if clear_from < clear.len() || expected.is_empty() {
                expected.push((clear.len() - clear_from, 0));
            }
            assert_eq!(
                subs, &expected,
                "segment {si} sample {i}: subsamples = tile data per AV1-ISOBMFF"
            );
            if tiles[si][i].len() > 1 {
                multi_tile_samples += 1;
            }
            // Clear bytes identical, every OBU header clear; protected bytes changed (per 16-byte block).
            let mut pos = 0;
            for &(c, p) in subs {
                assert_eq!(clear[pos..pos + c], enc[pos..pos + c], "clear run of sample {i}");
                pos += c;
                let full = match scheme {
                    Scheme::Cenc => p,
                    Scheme::Cbcs => 16.min(p / 16 * 16), // the first block of the pattern is encrypted
                };
                if full >= 16 {
                    assert_ne!(
                        clear[pos..pos + 16],
                        enc[pos..pos + 16],
                        "first protected block encrypted"
                    );
                }
                protected_bytes += p;
                pos += p;
            }
            for (header, payload, kind) in obu_list(clear) {
                assert_eq!(clear[header.clone()], enc[header], "OBU header + size clear");
                if kind != 6 && kind != 4 {
                    assert_eq!(clear[payload.clone()], enc[payload], "non-tile OBU {kind} clear");
                }
            }
            let mut back = enc.to_vec();
            decrypt_sample(&mut back, scheme, &entries[i], &constant_iv, (1, 9));
            assert!(
                back == clear,
                "segment {si} sample {i}: our inverse restores the clear sample"
            );
        }
    }
    (multi_tile_samples, protected_bytes)
}

/// ffmpeg decrypts every protected segment (init + that segment, as a player fetches them) to the frames of the
/// clear segment; without the key, or with another one, the frames differ.
fn check_with_ffmpeg(t: &Track, scheme: Scheme, kind: &str) {
    let (init, segments) = protect(t, scheme);
    let is_audio = t.init.windows(4).any(|w| w == b"dOps" || w == b"esds");
    let marker: &[u8] = if is_audio { b"enca" } else { b"encv" };
    assert!(init.windows(4).any(|w| w == marker), "protected sample entry");
    for ((n, clear_seg), enc_seg) in t.segments.iter().zip(segments) {
        let clear = write(&format!("{kind}-{n}-clear.mp4"), [t.init.clone(), clear_seg.clone()]);
        let enc = write(&format!("{kind}-{n}-{scheme:?}.mp4"), [init.clone(), enc_seg]);
        let reference = framemd5(&clear, None).expect("clear segment decodes");
        assert!(!reference.is_empty(), "{kind} segment {n} has frames");
        let decrypted = framemd5(&enc, Some(&KEY))
            .unwrap_or_else(|| panic!("ffmpeg decrypts and decodes {kind} segment {n} ({scheme:?})"));
        assert_eq!(
            decrypted, reference,
            "{kind} segment {n} ({scheme:?}): same frames after decryption"
        );
        let without_key = framemd5(&enc, None);
        assert_ne!(
            without_key.as_ref(),
            Some(&reference),
            "not the same frames without the key"
        );
        let wrong_key = framemd5(&enc, Some(b"fedcba9876543210"));
        assert_ne!(wrong_key.as_ref(), Some(&reference), "nor with another key");
    }
}

#[test]
fn cenc_av1_decrypts_to_the_same_frames_with_ffmpeg() {
    let (video, _) = media();
    check_with_ffmpeg(video, Scheme::Cenc, "video");
    // The whole track as one file too: init + both segments.
    let clear = clear_file(video, "video-clear.mp4");
    let enc = protected_file(video, Scheme::Cenc, "video-cenc.mp4");
    let reference = framemd5(&clear, None).expect("clear file decodes");
    assert_eq!(reference.len(), 120, "all frames");
    let decrypted = framemd5(&enc, Some(&KEY)).expect("ffmpeg decrypts and decodes the cenc file");
    assert_eq!(decrypted, reference, "same frames after decryption");
}

#[test]
fn cenc_av1_subsamples_are_the_tiles() {
    let (video, _) = media();
    let (multi_tile, protected) = check_av1_layout(video, Scheme::Cenc);
    assert!(multi_tile > 0, "rav1e wrote several tiles per frame");
    assert!(protected > 0);
}

#[test]
fn cbcs_av1_decrypts_to_the_same_frames_with_ffmpeg() {
    let (video, _) = media();
    check_with_ffmpeg(video, Scheme::Cbcs, "video");
    let clear = clear_file(video, "video-clear-2.mp4");
    let enc = protected_file(video, Scheme::Cbcs, "video-cbcs.mp4");
    let reference = framemd5(&clear, None).expect("clear file decodes");
    let decrypted = framemd5(&enc, Some(&KEY)).expect("ffmpeg decrypts and decodes the cbcs file");
    assert_eq!(decrypted, reference, "same frames after cbcs decryption");
}

#[test]
fn cbcs_av1_subsamples_are_the_tiles() {
    let (video, _) = media();
    let (multi_tile, _) = check_av1_layout(video, Scheme::Cbcs);
    assert!(multi_tile > 0);
}

/// Other encoders' AV1 (libaom: 2x2 tiles, film grain; SVT-AV1: hidden frames shown later, 480x272 coded for a
/// 480x270 picture), muxed by ffmpeg: the same tile checks against cros-codecs and ffmpeg decryption per segment.
#[test]
fn libaom_and_svt_av1_streams() {
    let aom = ffmpeg_av1(
        "aom.mp4",
        &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-tiles",
            "2x2",
            "-denoise-noise-level",
            "8",
            "-b:v",
            "500k",
        ],
    );
    let svt = ffmpeg_av1("svt.mp4", &["-c:v", "libsvtav1", "-preset", "12"]);
    for (name, t) in [("aom", &aom), ("svt", &svt)] {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let (_, protected) = check_av1_layout(t, scheme);
            assert!(protected > 0, "{name} {scheme:?}");
            check_with_ffmpeg(t, scheme, name);
        }
    }
    assert!(
        check_av1_layout(&aom, Scheme::Cenc).0 > 0,
        "libaom wrote several tiles per frame"
    );
}

#[test]
fn opus_decrypts_to_the_same_frames_with_ffmpeg() {
    let (_, audio) = media();
    check_with_ffmpeg(audio, Scheme::Cenc, "audio");
    check_with_ffmpeg(audio, Scheme::Cbcs, "audio");
    let clear = clear_file(audio, "audio-clear.mp4");
    let reference = framemd5(&clear, None).expect("clear audio decodes");
    assert!(reference.len() > 150, "{} audio frames", reference.len());
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let enc = protected_file(audio, scheme, &format!("audio-{scheme:?}.mp4"));
        let decrypted = framemd5(&enc, Some(&KEY)).unwrap_or_else(|| panic!("ffmpeg decrypts {scheme:?} Opus"));
        assert_eq!(decrypted, reference, "{scheme:?}: same audio after decryption");
    }
}

/// AAC-LC (libavcodec through the encoder seam) is protected like Opus, whole samples: ffmpeg decrypts cenc and
/// cbcs to the clear audio and not without the key; the `mp4a` entry becomes `enca` with `frma` naming `mp4a`.
#[test]
fn aac_decrypts_to_the_same_frames_with_ffmpeg() {
    let aac = encode_audio_track(vod_encode::AudioCodec::Aac);
    assert!(aac.init.windows(4).any(|w| w == b"esds"), "an mp4a/esds track");
    check_with_ffmpeg(&aac, Scheme::Cenc, "aac");
    check_with_ffmpeg(&aac, Scheme::Cbcs, "aac");
    let clear = clear_file(&aac, "aac-clear.mp4");
    let reference = framemd5(&clear, None).expect("clear AAC decodes");
    assert!(reference.len() > 150, "{} AAC frames in 4 s", reference.len());
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let (init, _) = protect(&aac, scheme);
        let frma = init.windows(4).position(|w| w == b"frma").expect("frma");
        assert_eq!(&init[frma + 4..frma + 8], b"mp4a", "{scheme:?}: the original format");
        let enc = protected_file(&aac, scheme, &format!("aac-{scheme:?}.mp4"));
        let decrypted = framemd5(&enc, Some(&KEY)).unwrap_or_else(|| panic!("ffmpeg decrypts {scheme:?} AAC"));
        assert_eq!(decrypted, reference, "{scheme:?}: same audio after decryption");
    }
}

#[test]
fn opus_whole_sample_layout() {
    let (_, audio) = media();
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let (init, segments) = protect(audio, scheme);
        let constant_iv = if scheme == Scheme::Cbcs {
            tenc_constant_iv(&init)
        } else {
            Vec::new()
        };
        let mut all_ivs = std::collections::HashSet::new();
        for ((_, clear_seg), enc_seg) in audio.segments.iter().zip(&segments) {
            let (_, clear_ranges) = samples_of(clear_seg);
            let (moof, enc_ranges) = samples_of(enc_seg);
            let traf = &moof.traf[0];
            let entries = match scheme {
                Scheme::Cenc => {
                    assert!(
                        !traf.senc.as_ref().unwrap().use_subsamples,
                        "whole-sample: no subsamples"
                    );
                    assert_eq!(traf.saiz[0].default_sample_info_size, 8, "saiz: 8-byte IV per sample");
                    senc_entries(&moof, 8)
                }
                Scheme::Cbcs => {
                    // Constant IV, no subsamples: no sample auxiliary information at all.
                    assert!(traf.senc.is_none() && traf.saiz.is_empty() && traf.saio.is_empty());
                    vec![(Vec::new(), Vec::new()); enc_ranges.len()]
                }
            };
            for (i, (cr, er)) in clear_ranges.iter().zip(&enc_ranges).enumerate() {
                let clear = &clear_seg[cr.clone()];
                let mut back = enc_seg[er.clone()].to_vec();
                if scheme == Scheme::Cenc {
                    assert!(all_ivs.insert(entries[i].0.clone()), "IVs never repeat");
                    assert_ne!(back[..], clear[..], "every cenc sample encrypted");
                } else if clear.len() >= 16 {
                    assert_ne!(back[..16], clear[..16], "cbcs: full blocks encrypted");
                    let tail = clear.len() / 16 * 16;
                    assert_eq!(back[tail..], clear[tail..], "cbcs: trailing partial block clear");
                }
                decrypt_sample(&mut back, scheme, &entries[i], &constant_iv, (0, 0));
                assert!(back == clear, "inverse restores sample {i}");
            }
        }
    }
}

#[test]
fn output_is_deterministic_and_ivs_unique_across_segments_and_tracks() {
    let (video, audio) = media();
    let (_, first) = protect(video, Scheme::Cenc);
    let (_, again) = protect(video, Scheme::Cenc);
    assert!(first == again, "same request, same bytes");
    let mut ivs = std::collections::HashSet::new();
    for (t, segs) in [(video, first), (audio, protect(audio, Scheme::Cenc).1)] {
        for seg in &segs {
            let (moof, ranges) = samples_of(seg);
            for (iv, _) in senc_entries(&moof, 8) {
                assert!(ivs.insert(iv), "IV reused ({:?} track)", t.init.len());
            }
            assert!(!ranges.is_empty());
        }
    }
    // Another segment number gives other IVs for the same bytes.
    let (n, seg) = &video.segments[0];
    let a = protect_segment(&video.init, seg, Scheme::Cenc, &KEY, &KID, *n).unwrap();
    let b = protect_segment(&video.init, seg, Scheme::Cenc, &KEY, &KID, n + 1000).unwrap();
    assert_ne!(a, b);
}

/// Mutated real inputs (bit flips, truncations, size fields) give errors or output, never a panic.
#[test]
fn mutated_segments_never_panic() {
    let (video, audio) = media();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for t in [video, audio] {
        let (_, seg) = &t.segments[0];
        // Only the moof and the first samples' headers matter to the parser: mutate the first 4 KiB densely.
        for round in 0..600 {
            let mut s = seg.clone();
            match round % 4 {
                0 => {
                    let at = (next() as usize) % 4096.min(s.len());
                    s[at] ^= 1 << (next() % 8);
                }
                1 => {
                    let at = (next() as usize) % 4096.min(s.len());
                    s[at] = next() as u8;
                    let at2 = (next() as usize) % s.len();
                    s[at2] = next() as u8;
                }
                2 => s.truncate((next() as usize) % s.len()),
                _ => {
                    // A box size field somewhere in the moof: 0, 1, huge, or off by a little.
                    let sizes: Vec<usize> = (0..s.len().min(2048) - 8)
                        .filter(|&i| s[i + 4..i + 8].iter().all(u8::is_ascii_lowercase))
                        .collect();
                    let at = sizes[(next() as usize) % sizes.len()];
                    let v: u32 = match next() % 4 {
                        0 => 0,
                        1 => 1,
                        2 => u32::MAX,
                        _ => u32::from_be_bytes(s[at..at + 4].try_into().unwrap()).wrapping_add(next() as u32 % 9),
                    };
                    s[at..at + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            for scheme in [Scheme::Cenc, Scheme::Cbcs] {
                if protect_segment(&t.init, &s, scheme, &KEY, &KID, 1).is_err() {
                    errors += 1;
                }
            }
            let mut init = t.init.clone();
            let at = (next() as usize) % init.len();
            init[at] ^= 1 << (next() % 8);
            let _ = protect_init(&init, Scheme::Cenc, &KID, &[]);
            let _ = protect_segment(&init, seg, Scheme::Cenc, &KEY, &KID, 1);
        }
    }
    assert!(errors > 0, "some mutations are detected as errors");
}

#[test]
fn wrong_inputs_are_errors() {
    let (video, audio) = media();
    let (_, vseg) = &video.segments[0];
    // Audio init with a video segment: the track ids differ.
    assert!(matches!(
        protect_segment(&audio.init, vseg, Scheme::Cenc, &KEY, &KID, 0),
        Err(EncryptError::Malformed(_))
    ));
    // Protecting twice is refused.
    let (init, segs) = protect(video, Scheme::Cenc);
    assert!(matches!(
        protect_init(&init, Scheme::Cenc, &KID, &[]),
        Err(EncryptError::Unsupported(_))
    ));
    assert!(matches!(
        protect_segment(&video.init, &segs[0], Scheme::Cenc, &KEY, &KID, 0),
        Err(EncryptError::Unsupported(_))
    ));
}

/// Time of one protect_segment on the largest video segment; printed for the report (`--nocapture`).
#[test]
fn protect_segment_timing() {
    let (video, audio) = media();
    let (n, seg) = video.segments.iter().max_by_key(|s| s.1.len()).unwrap();
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let runs = 50;
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(protect_segment(&video.init, seg, scheme, &KEY, &KID, *n).unwrap());
        }
        let per = start.elapsed() / runs;
        let mbps = seg.len() as f64 / per.as_secs_f64() / 1e6;
        println!(
            "protect_segment AV1 {scheme:?}: {} bytes in {per:?} ({mbps:.0} MB/s)",
            seg.len()
        );
    }
    let (n, seg) = &audio.segments[0];
    let start = Instant::now();
    for _ in 0..50 {
        std::hint::black_box(protect_segment(&audio.init, seg, Scheme::Cenc, &KEY, &KID, *n).unwrap());
    }
    println!(
        "protect_segment Opus Cenc: {} bytes in {:?}",
        seg.len(),
        start.elapsed() / 50
    );
}
