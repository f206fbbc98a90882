//! The probe entry point, its result types and errors; container detection is the formats' own (`format`).

use serde::{Deserialize, Serialize};

use crate::source::ReadAt;

/// What [`probe`] found in a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    pub container: Container,
    /// Size of the source in bytes.
    pub size: u64,
    /// Presentation duration in seconds.
    pub duration_secs: f64,
    /// Overall bits per second (size * 8 / duration); `None` when the duration is unknown.
    pub bitrate: Option<u64>,
    pub video: Vec<VideoStream>,
    pub audio: Vec<AudioStream>,
}

/// Container formats a probe accepts: those [`probe`] reads itself, and those a caller's extra formats read (the
/// ingest function's libavformat prober: `vod-avprobe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Mov,
    Matroska,
    Webm,
    Y4m,
    Wav,
    /// MPEG transport stream (188-byte packets, or M2TS/BDAV's 192).
    MpegTs,
    /// Material Exchange Format (SMPTE 377M).
    Mxf,
    Avi,
    /// Advanced Systems Format (WMV, WMA).
    Asf,
    Flv,
    /// MPEG program stream (`.mpg`, VOB).
    MpegPs,
    Mp3,
    /// Raw AAC in ADTS frames.
    Aac,
    Flac,
    Ogg,
}

impl Container {
    /// The libavformat demuxer that reads it (the encoder opens a source with this one only).
    pub fn ffmpeg_demuxer(self) -> &'static str {
        match self {
            Container::Mp4 | Container::Mov => "mov",
            Container::Matroska | Container::Webm => "matroska",
            Container::Y4m => "yuv4mpegpipe",
            Container::Wav => "wav",
            Container::MpegTs => "mpegts",
            Container::Mxf => "mxf",
            Container::Avi => "avi",
            Container::Asf => "asf",
            Container::Flv => "flv",
            Container::MpegPs => "mpeg",
            Container::Mp3 => "mp3",
            Container::Aac => "aac",
            Container::Flac => "flac",
            Container::Ogg => "ogg",
        }
    }
}

/// One video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// Lowercase ffmpeg-style codec name ("h264", "hevc", "prores", ...), or the
    /// fourcc / codec id as found for codecs we do not know.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second (average), 0.0 when unknown.
    pub frame_rate: f64,
    pub frame_count: Option<u64>,
    pub duration_secs: f64,
    pub bitrate: Option<u64>,
    /// Clockwise display rotation in degrees (0..360) when the container carries
    /// one (MP4/MOV track matrix), else `None`.
    pub rotation: Option<i32>,
    /// Pixel (sample) aspect ratio h:v when the container declares non-square pixels (MP4 `pasp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_aspect: Option<(u32, u32)>,
    /// Presentation times of the stream's key frames in milliseconds from its first frame, ascending, as the
    /// container's index lists them (MP4 sync samples, Matroska cue points); empty when unknown. The job planner
    /// cuts chunks just after them. At most [`MAX_KEY_FRAMES`] (thinned evenly beyond).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_frames_ms: Vec<u64>,
    /// How its pictures are scanned, where the container or codec says (the encoder deinterlaces each frame its
    /// decoder flags interlaced, whatever this says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_order: Option<FieldOrder>,
}

/// The scan of a video stream's pictures: progressive, or interlaced with the field shown first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldOrder {
    Progressive,
    /// Interlaced, top field first.
    Tff,
    /// Interlaced, bottom field first.
    Bff,
}

/// Bound on [`VideoStream::key_frames_ms`] (it is stored with the asset: about 6 bytes each).
pub const MAX_KEY_FRAMES: usize = 10_000;

/// Key-frame times in seconds from the container's time zero, and the stream's first presentation time → the
/// sorted, de-duplicated millisecond list of [`VideoStream::key_frames_ms`], thinned to [`MAX_KEY_FRAMES`].
pub(crate) fn key_frame_list(times: impl IntoIterator<Item = f64>, origin: f64) -> Vec<u64> {
    let mut ms: Vec<u64> = times
        .into_iter()
        .map(|t| ((t - origin) * 1000.0).round())
        .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e15)
        .map(|t| t as u64)
        .collect();
    ms.sort_unstable();
    ms.dedup();
    if ms.len() > MAX_KEY_FRAMES {
        let step = ms.len().div_ceil(MAX_KEY_FRAMES);
        ms = ms.into_iter().step_by(step).collect();
    }
    ms
}

/// One audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    /// Lowercase ffmpeg-style codec name ("aac", "opus", "pcm_s16le", ...).
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
    pub duration_secs: f64,
    pub bitrate: Option<u64>,
}

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is truncated: {0}")]
    Truncated(String),
    #[error("the file is corrupt: {0}")]
    Corrupt(String),
    /// Not a container we read (text, jpeg, random bytes...).
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    #[error("no audio or video stream found")]
    NoStreams,
    /// Reading the file took longer than the probe's budget (a file built to be slow to read).
    #[error("the file could not be probed within {0} s")]
    TimeBudget(f64),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Probes `src`: detects the container from its magic bytes and reads its
/// stream layout with the matching demuxer.
pub fn probe(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    probe_within(src, PROBE_TIME_BUDGET)
}

/// [`probe_within`] that also tries `extra` formats, after this crate's own (detection order: ours, then theirs).
pub fn probe_with(
    src: &dyn ReadAt,
    budget: std::time::Duration,
    extra: &[&dyn crate::format::ContainerFormat],
) -> Result<MediaInfo, ProbeError> {
    let budgeted = crate::source::BudgetedSource::new(src, budget);
    match probe_source(&budgeted, extra) {
        Err(ProbeError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(ProbeError::TimeBudget(budget.as_secs_f64()))
        }
        other => other,
    }
}

/// Wall-clock budget of one probe: reads after it fail, and the file is refused (below ingest's timeout).
pub const PROBE_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// [`probe`] with its own time budget. Every read goes through a [`crate::BudgetedSource`]: small reads are
/// served from cached blocks, and none happens after the budget.
pub fn probe_within(src: &dyn ReadAt, budget: std::time::Duration) -> Result<MediaInfo, ProbeError> {
    probe_with(src, budget, &[])
}

fn probe_source(src: &dyn ReadAt, extra: &[&dyn crate::format::ContainerFormat]) -> Result<MediaInfo, ProbeError> {
    let size = src.size();
    if size == 0 {
        return Err(ProbeError::Empty);
    }
    let head = src.read_at(0, crate::format::HEAD_LEN)?;
    let formats = || crate::format::FORMATS.iter().chain(extra.iter());
    let info = match formats().find(|f| f.detect(&head)) {
        Some(format) => guarded(*format, src)?,
        None => {
            return Err(if head.len() < 12 && formats().any(|f| f.could_be(&head)) {
                ProbeError::Truncated("too short to hold a media header".into())
            } else {
                ProbeError::UnsupportedFormat("no known container signature".into())
            })
        }
    };
    if info.video.is_empty() && info.audio.is_empty() {
        return Err(ProbeError::NoStreams);
    }
    Ok(info)
}

/// Runs a container's prober, turning a panic inside a third-party demuxer into a `Corrupt` error (defence in
/// depth: our own code does not panic).
fn guarded(format: &dyn crate::format::ContainerFormat, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format.probe(src))).unwrap_or_else(|_| {
        let name = format
            .containers()
            .first()
            .map(|c| format!("{c:?}"))
            .unwrap_or_default();
        Err(ProbeError::Corrupt(format!("{} parser failed", name.to_lowercase())))
    })
}

/// Overall bits per second for `size` bytes lasting `duration_secs`.
pub fn bitrate(bytes: u64, duration_secs: f64) -> Option<u64> {
    if duration_secs.is_finite() && duration_secs > 0.0 {
        let bps = (bytes as f64 * 8.0 / duration_secs).round();
        if bps.is_finite() && bps >= 0.0 && bps < u64::MAX as f64 {
            return Some(bps as u64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_magic() {
        let detected = |head: &[u8]| crate::format::detect(head).map(|f| f.containers()[0]);
        assert_eq!(detected(b"\x1a\x45\xdf\xa3\x01"), Some(Container::Matroska));
        assert_eq!(detected(b"YUV4MPEG2 W2 H2"), Some(Container::Y4m));
        assert_eq!(detected(b"RIFF\0\0\0\0WAVEfmt "), Some(Container::Wav));
        assert_eq!(detected(b"RIFF\0\0\0\0AVI LIST"), None);
        assert_eq!(detected(b"\0\0\0\x20ftypisom"), Some(Container::Mp4));
        assert_eq!(detected(b"\0\0\0\x08wide"), Some(Container::Mp4));
        assert_eq!(detected(b"hello world, this is text"), None);
        assert_eq!(detected(b"\xff\xd8\xff\xe0\0\x10JFIF"), None);
    }

    #[test]
    fn empty_and_tiny() {
        assert!(matches!(probe(&Vec::new()), Err(ProbeError::Empty)));
        assert!(matches!(probe(&b"RIF".to_vec()), Err(ProbeError::Truncated(_))));
        assert!(matches!(
            probe(&b"\0\0\0\x20fty".to_vec()),
            Err(ProbeError::Truncated(_))
        ));
        assert!(matches!(probe(&b"abc".to_vec()), Err(ProbeError::UnsupportedFormat(_))));
    }

    #[test]
    fn key_frames_are_relative_sorted_and_bounded() {
        assert_eq!(
            key_frame_list([2.5, 0.5, 0.5, 4.5004, f64::NAN, 0.0], 0.5),
            vec![0, 2000, 4000]
        );
        let many = key_frame_list((0..25_000).map(f64::from), 0.0);
        assert!(many.len() <= MAX_KEY_FRAMES && many.len() > MAX_KEY_FRAMES / 2);
        assert_eq!(many[0], 0);
        assert!(many.windows(2).all(|w| w[1] - w[0] == many[1]));
    }

    #[test]
    fn container_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Container::Webm).unwrap(), "\"webm\"");
    }
}
