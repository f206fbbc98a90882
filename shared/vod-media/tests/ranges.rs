//! Byte-range planning for encoder tasks: a chunk's planned ranges are a fraction of the file, and a file holding
//! only those ranges (zeros elsewhere, like the worker's sparse copy) decodes the chunk without an error.
use std::path::{Path, PathBuf};
use std::process::Command;

use vod_media::{mp4_needed_ranges, Need};

fn make(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
        ])
        .args([
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "24",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "50", "-c:a", "aac", "-ac", "2", "-shortest"])
        .args(extra)
        .arg(&out)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success());
    out
}

fn sparse(data: &[u8], ranges: &[(u64, u64)], out: &Path) {
    let mut buf = vec![0u8; data.len()];
    for (a, z) in ranges {
        buf[*a as usize..*z as usize].copy_from_slice(&data[*a as usize..*z as usize]);
    }
    std::fs::write(out, buf).expect("write");
}

fn decode(file: &Path, args: &[&str]) -> (bool, String, u64) {
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
        .count() as u64;
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
