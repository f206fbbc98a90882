//! Byte-range planning for encoder tasks: a chunk's planned ranges are a fraction of the file, and a file holding
//! only those ranges (zeros elsewhere, like the worker's sparse copy) decodes the chunk without an error.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

mod common;

use common::Counting;
use vod_media::{matroska_needed_ranges, mp4_needed_ranges, Need};

/// H.264 (a key frame every 2 s) and AAC.
const H264_AAC: &[&str] = &[
    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50", "-c:a", "aac", "-ac", "2",
];
/// VP9 (a key frame every 2 s, fast settings) and Opus.
const VP9_OPUS: &[&str] = &[
    "-c:v",
    "libvpx-vp9",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-b:v",
    "300k",
    "-g",
    "50",
    "-c:a",
    "libopus",
    "-ac",
    "2",
];

/// A 24 s 320x240 25 fps file with a sine tone.
fn make(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    make_with(dir, name, H264_AAC, extra)
}

fn make_with(dir: &Path, name: &str, codecs: &[&str], extra: &[&str]) -> PathBuf {
    let mut args = codecs.to_vec();
    args.push("-shortest");
    args.extend_from_slice(extra);
    vod_testkit::synth_file("320x240", 25, 24, &args, &dir.join(name))
}

fn sparse(data: &[u8], ranges: &[(u64, u64)], out: &Path) {
    let mut buf = vec![0u8; data.len()];
    for (a, z) in ranges {
        buf[*a as usize..*z as usize].copy_from_slice(&data[*a as usize..*z as usize]);
    }
    std::fs::write(out, buf).expect("write");
}

fn decode(file: &Path, args: &[&str]) -> (bool, String, u64) {
    let (ok, err, frames) = decode_frames(file, args);
    (ok, err, frames.len() as u64)
}

/// ffmpeg's success, its error output, and one framecrc line (timestamps, size, checksum) per frame.
fn decode_frames(file: &Path, args: &[&str]) -> (bool, String, Vec<String>) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(args.iter().take_while(|a| **a != "-i"))
        .arg("-i")
        .arg(file)
        .args(args.iter().skip_while(|a| **a != "-i").skip(1))
        .args(["-f", "framecrc", "-"])
        .output()
        .expect("ffmpeg");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        frames,
    )
}

#[test]
fn a_chunk_needs_a_fraction_of_the_file_and_decodes_from_it() {
    let dir = std::env::temp_dir().join(format!("vod-ranges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, extra) in [
        ("moov-at-end.mp4", vec![]),
        ("faststart.mp4", vec!["-movflags", "+faststart"]),
    ] {
        let file = make(&dir, name, &extra);
        let data = std::fs::read(&file).expect("read");
        let size = data.len() as u64;
        let need = Need::Video {
            start_secs: 12.0,
            end_secs: 14.0,
        };
        let ranges = mp4_needed_ranges(&data, need).expect("plan").expect("ranges");
        let fetched: u64 = ranges.iter().map(|(a, z)| z - a).sum();
        assert!(
            fetched * 10 < size * 5,
            "{name}: {fetched} of {size} bytes for 2 s of 24 s"
        );
        let part = dir.join(format!("part-{name}"));
        sparse(&data, &ranges, &part);
        let (ok, err, frames) = decode(&part, &["-ss", "12", "-i", "-t", "2", "-map", "0:v"]);
        assert!(ok && err.is_empty(), "{name}: {err}");
        assert_eq!(frames, 50, "{name}: every frame of the chunk");
        let (_, _, whole) = decode(&file, &["-ss", "12", "-i", "-t", "2", "-map", "0:v"]);
        assert_eq!(whole, frames);

        let audio = mp4_needed_ranges(&data, Need::Audio).expect("plan").expect("ranges");
        let part = dir.join(format!("audio-{name}"));
        sparse(&data, &audio, &part);
        let (ok, err, _) = decode(&part, &["-i", "-map", "0:a"]);
        assert!(ok && err.is_empty(), "{name} audio: {err}");
    }
    // A fragmented MP4 has no sample tables to plan from: read it whole.
    let frag = make(&dir, "fragmented.mp4", &["-movflags", "+frag_keyframe+empty_moov"]);
    let data = std::fs::read(&frag).expect("read");
    assert_eq!(
        mp4_needed_ranges(
            &data,
            Need::Video {
                start_secs: 2.0,
                end_secs: 4.0
            }
        )
        .expect("plan"),
        None
    );
    // Hostile: truncated files are errors or whole reads, never panics.
    for cut in [0, 7, 100, data.len() / 2] {
        let _ = mp4_needed_ranges(&data[..cut].to_vec(), Need::Audio);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ranges are sorted, non-empty, apart from each other and within the file.
fn check_shape(name: &str, ranges: &[(u64, u64)], size: u64) {
    assert!(ranges.iter().all(|(a, z)| a < z && *z <= size), "{name}: {ranges:?}");
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{name}: {ranges:?}");
}

#[test]
fn a_matroska_chunk_needs_a_fraction_of_the_file_and_decodes_from_it() {
    let dir = std::env::temp_dir().join(format!("vod-ranges-mkv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let need = Need::Video {
        start_secs: 12.0,
        end_secs: 14.0,
    };
    // ffmpeg writes the Cues after the clusters unless asked to move them to the front or to reserve space there.
    for (name, codecs, extra) in [
        ("cues-at-end.mkv", H264_AAC, vec![]),
        ("cues-to-front.mkv", H264_AAC, vec!["-cues_to_front", "1"]),
        ("cues-at-end.webm", VP9_OPUS, vec![]),
        ("reserved-index.webm", VP9_OPUS, vec!["-reserve_index_space", "50000"]),
        // Timestamps starting at 10 s: chunk times count from the start of the stream.
        ("offset.mkv", H264_AAC, vec!["-output_ts_offset", "10"]),
    ] {
        let file = make_with(&dir, name, codecs, &extra);
        let data = std::fs::read(&file).expect("read");
        let size = data.len() as u64;
        let counting = Counting {
            data: &data,
            calls: AtomicU64::new(0),
        };
        let ranges = matroska_needed_ranges(&counting, need).expect("plan").expect("ranges");
        check_shape(name, &ranges, size);
        // Each read may be a ranged GET: the header window, the far elements the SeekHead points to, and the
        // clusters (with their successors) that the chunk's first and last cue points name, to check their times.
        let reads = counting.calls.load(Ordering::Relaxed);
        eprintln!("{name}: planned with {reads} reads");
        assert!(reads <= 8, "{name}: {reads} reads to plan");
        let fetched: u64 = ranges.iter().map(|(a, z)| z - a).sum();
        eprintln!(
            "{name}: {fetched} of {size} bytes in {} ranges: {ranges:?}",
            ranges.len()
        );
        assert!(
            fetched * 10 < size * 5,
            "{name}: {fetched} of {size} bytes for 2 s of 24 s"
        );
        let part = dir.join(format!("part-{name}"));
        sparse(&data, &ranges, &part);
        let args = ["-ss", "12", "-i", "-t", "2", "-map", "0:v"];
        let (ok, err, frames) = decode_frames(&part, &args);
        assert!(ok && err.is_empty(), "{name}: {err}");
        let (_, _, whole) = decode_frames(&file, &args);
        assert_eq!(frames, whole, "{name}: the same frames as from the whole file");
        // 2 s at 25 fps; Matroska's millisecond timestamps (and the encoder delay) can move one frame out.
        assert!((49..=50).contains(&frames.len()), "{name}: {} frames", frames.len());

        // Other chunks: the first, the last, and one past the end.
        for (a, z) in [(0.0, 2.0), (22.0, 24.0), (30.0, 32.0)] {
            let r = matroska_needed_ranges(
                &data,
                Need::Video {
                    start_secs: a,
                    end_secs: z,
                },
            )
            .expect("plan")
            .expect("ranges");
            check_shape(name, &r, size);
        }
        // Audio is interleaved with video in every cluster: read it whole.
        assert_eq!(matroska_needed_ranges(&data, Need::Audio).expect("plan"), None);

        // Hostile: truncated files are errors or whole reads, never panics.
        for cut in [0, 3, 4, 20, 40, 100, 300, 1000, 4096, data.len() / 2, data.len() - 1] {
            let cut = data[..cut].to_vec();
            if let Ok(Some(r)) = matroska_needed_ranges(&cut, need) {
                check_shape(name, &r, cut.len() as u64);
            }
        }
        // Random byte changes in the header area and the tail (Cues, Tags): no panic, and any plan stays within
        // the file.
        let header_area = ranges.first().map_or(4096, |r| r.1.min(4096)) as usize;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bad = data.clone();
            for k in 0..1 + (x % 3) {
                let r = x >> (8 + 16 * k);
                let at = if r & 1 == 0 {
                    (r >> 1) as usize % header_area
                } else {
                    data.len() - 1 - (r >> 1) as usize % 1024
                };
                bad[at] ^= (x >> (5 * k)) as u8 | 1;
            }
            if let Ok(Some(r)) = matroska_needed_ranges(&bad, need) {
                check_shape(name, &r, size);
            }
        }
        // A SeekHead position past the end of the file.
        let seek_position = data
            .windows(2)
            .take(header_area)
            .position(|w| w == [0x53, 0xAC])
            .expect("a SeekPosition");
        let mut bad = data.clone();
        let len = usize::from(bad[seek_position + 2] & 0x7F);
        assert!(bad[seek_position + 2] & 0x80 != 0 && (1..=8).contains(&len));
        bad[seek_position + 3..seek_position + 3 + len].fill(0xFF);
        let planned = matroska_needed_ranges(&bad, need);
        assert!(!matches!(planned, Ok(Some(_))), "{name}: {planned:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_matroska_index_is_not_planned_from() {
    let dir = std::env::temp_dir().join(format!("vod-ranges-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = make_with(&dir, "stale.mkv", H264_AAC, &["-write_crc32", "0"]);
    let mut data = std::fs::read(&file).expect("read");
    let need = Need::Video {
        start_secs: 12.0,
        end_secs: 14.0,
    };
    assert!(matroska_needed_ranges(&data, need).expect("plan").is_some());
    // An index left over from an edit: every two-byte CueTime doubled (same length), clusters unchanged.
    let cues = data
        .windows(4)
        .rposition(|w| w == [0x1C, 0x53, 0xBB, 0x6B])
        .expect("Cues");
    let mut doubled = 0;
    let mut i = cues;
    while i + 4 <= data.len() {
        if data[i] == 0xB3 && data[i + 1] == 0x82 {
            let t = u16::from_be_bytes([data[i + 2], data[i + 3]]);
            if let Some(t2) = t.checked_mul(2) {
                data[i + 2..i + 4].copy_from_slice(&t2.to_be_bytes());
                doubled += 1;
            }
            i += 4;
        } else {
            i += 1;
        }
    }
    assert!(doubled >= 4, "{doubled} cue times changed");
    // The decoder would seek by the same wrong times: the chunk reads the whole file rather than the wrong clusters.
    assert_eq!(matroska_needed_ranges(&data, need).expect("plan"), None);
    let _ = std::fs::remove_dir_all(&dir);
}
