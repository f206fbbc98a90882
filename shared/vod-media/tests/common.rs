//! Test media generated with ffmpeg at test time (cached under the target's tmp dir).
#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use vod_media::ReadAt;

const V320: &str = "testsrc2=size=320x240:rate=25";
const A48: &str = "sine=frequency=440:sample_rate=48000";

/// ffmpeg arguments (after the global flags, before the output path) for each test file.
pub fn recipe(name: &str) -> Vec<String> {
    let av = |v: &str, a: &str, t: &str| -> Vec<String> {
        ["-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a, "-t", t]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut args = match name {
        "h264_aac.mp4" | "h264_aac.mov" | "h264_aac.mkv" => av(V320, A48, "2"),
        "faststart.mp4" => av(V320, A48, "2"),
        "gop.mp4" | "gop.mkv" | "gop.webm" => av(V320, A48, "6"),
        "vp9_opus.webm" => av(V320, A48, "2"),
        "odd_mono.mp4" => av(
            "testsrc2=size=320x240:rate=30,scale=321:241",
            "sine=frequency=440:sample_rate=44100",
            "1",
        ),
        "hevc.mp4" => av(V320, A48, "1"),
        "prores.mov" => av(V320, A48, "1"),
        "big.mp4" => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            "testsrc2=size=320x240:rate=25,noise=alls=100:allf=t".into(),
            "-t".into(),
            "2".into(),
        ],
        "clip.y4m" => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            V320.into(),
            "-t".into(),
            "1".into(),
        ],
        "odd.y4m" => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            "testsrc2=size=320x240:rate=25,scale=321:241".into(),
            "-t".into(),
            "0.4".into(),
        ],
        "stereo.wav" => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            "sine=frequency=440:sample_rate=44100".into(),
            "-t".into(),
            "2".into(),
        ],
        "mono_f32.wav" => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            A48.into(),
            "-t".into(),
            "1.5".into(),
        ],
        "rotated.mp4" => vec!["-i".into(), path("h264_aac.mp4").to_string_lossy().into_owned()],
        "subs_only.mkv" | "subs_only.mp4" => {
            vec!["-i".into(), subtitle_file().to_string_lossy().into_owned()]
        }
        other => panic!("no recipe for {other}"),
    };
    let extra: &[&str] = match name {
        "h264_aac.mp4" | "h264_aac.mov" | "h264_aac.mkv" => {
            &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2"]
        }
        "faststart.mp4" => &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-movflags",
            "+faststart",
        ],
        // Key frames at 0, 1.2, 3.4 and 5 s only; x264's B-frames give the samples composition offsets.
        "gop.mp4" | "gop.mkv" => &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "1000",
            "-sc_threshold",
            "0",
            "-force_key_frames",
            "0,1.2,3.4,5",
            "-c:a",
            "aac",
        ],
        "gop.webm" => &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "1000",
            "-force_key_frames",
            "0,1.2,3.4,5",
            "-c:a",
            "libopus",
        ],
        "vp9_opus.webm" => &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-c:a",
            "libopus",
            "-ac",
            "2",
        ],
        "odd_mono.mp4" => &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv444p",
            "-c:a",
            "aac",
            "-ac",
            "1",
        ],
        "hevc.mp4" => &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "log-level=none",
            "-c:a",
            "aac",
            "-ac",
            "2",
        ],
        "prores.mov" => &["-c:v", "prores_ks", "-profile:v", "3", "-c:a", "pcm_s16le", "-ac", "2"],
        "big.mp4" => &["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"],
        "clip.y4m" | "odd.y4m" => &["-pix_fmt", "yuv420p"],
        "stereo.wav" => &["-ac", "2", "-c:a", "pcm_s16le"],
        "mono_f32.wav" => &["-ac", "1", "-c:a", "pcm_f32le"],
        "rotated.mp4" => &["-c", "copy", "-metadata:s:v:0", "rotate=90"],
        "subs_only.mkv" => &["-c:s", "srt"],
        "subs_only.mp4" => &["-c:s", "mov_text"],
        _ => &[],
    };
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vod-media-media");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn subtitle_file() -> PathBuf {
    let p = dir().join("subs.srt");
    if !p.exists() {
        std::fs::write(
            &p,
            "1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n\n",
        )
        .unwrap();
    }
    p
}

/// Path of a generated test file, generating it (once per process, cached on disk) if needed.
pub fn path(name: &str) -> PathBuf {
    static CELLS: OnceLock<Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>> = OnceLock::new();
    let cell = {
        let mut map = CELLS.get_or_init(Default::default).lock().unwrap();
        map.entry(name.to_string()).or_default().clone()
    };
    cell.get_or_init(|| generate(name)).clone()
}

fn generate(name: &str) -> PathBuf {
    let args = recipe(name);
    let mut h = DefaultHasher::new();
    args.hash(&mut h);
    let out = dir().join(format!("{:016x}-{name}", h.finish()));
    if out.exists() {
        return out;
    }
    let tmp = dir().join(format!("tmp-{}-{name}", std::process::id()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vod_testkit::ffmpeg(&args, &tmp);
    std::fs::rename(&tmp, &out).unwrap();
    out
}

pub fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap()
}

/// ffprobe's format duration, the reference our durations must match.
pub fn ffprobe_duration(name: &str) -> f64 {
    let probed = vod_testkit::ffprobe(&["-show_entries", "format=duration", path(name).to_str().expect("utf-8")]);
    probed["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("ffprobe duration")
}

/// A `ReadAt` that counts its `read_at` calls.
pub struct Counting<'a> {
    pub data: &'a [u8],
    pub calls: std::sync::atomic::AtomicU64,
}

impl ReadAt for Counting<'_> {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(slice(self.data, offset, len).to_vec())
    }
}

fn slice(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(len).min(data.len());
    &data[start..end]
}

/// A view of `data` cut to `len` bytes with one byte XOR-ed, without copying the file.
pub struct Mutated<'a> {
    pub data: &'a [u8],
    pub len: usize,
    pub flip: Option<(usize, u8)>,
}

impl ReadAt for Mutated<'_> {
    fn size(&self) -> u64 {
        self.len as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut out = slice(&self.data[..self.len], offset, len).to_vec();
        if let Some((pos, xor)) = self.flip {
            if let Some(rel) = pos.checked_sub(offset as usize) {
                if let Some(b) = out.get_mut(rel) {
                    *b ^= xor;
                }
            }
        }
        Ok(out)
    }
}
