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

/// A video colour description: ITU-T H.273 code points (colour primaries, transfer characteristics, matrix
/// coefficients) and the sample range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColourDescription {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
}

impl ColourDescription {
    /// The dynamic range HLS names (`VIDEO-RANGE`): PQ (SMPTE ST 2084, transfer 16), HLG (transfer 18) or SDR.
    pub fn video_range(&self) -> &'static str {
        match self.transfer {
            16 => "PQ",
            18 => "HLG",
            _ => "SDR",
        }
    }
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
    /// The track's language as the container tags it (ISO 639-2 like `fre`, or BCP 47 like `fr-CA`); absent when
    /// untagged or `und`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The track's human-readable name, where the container has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A language tag as BCP 47 wants it: kept when well-formed (letters, digits and hyphens, a 2-3 letter primary
/// language, at most 35 characters) and not "undetermined"/"multiple"; an ISO 639-2 primary language (bibliographic
/// like `fre` or terminological like `fra`, as MP4, Matroska and MPEG-TS tag tracks) becomes its ISO 639-1 code
/// where one exists (`fr`), as RFC 5646 asks and players expect; `_` becomes `-`.
pub fn language_tag(tag: &str) -> Option<String> {
    let tag = tag.trim().trim_end_matches('\0').replace('_', "-");
    let (primary, rest) = tag.split_once('-').map_or((tag.as_str(), ""), |(p, r)| (p, r));
    let well_formed = tag.len() <= 35
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.split('-').skip(1).all(|s| (1..=8).contains(&s.len()));
    let primary = primary.to_ascii_lowercase();
    if !well_formed || ["und", "mul", "zxx", "mis"].contains(&primary.as_str()) {
        return None;
    }
    let primary = language(&primary)
        .and_then(|l| l.to_639_1())
        .map_or(primary, str::to_string);
    Some(if rest.is_empty() {
        primary
    } else {
        format!("{primary}-{rest}")
    })
}

/// Whether two tags name the same language (their primary language, normalised: `fre`, `fra`, `fr` and `fr-CA`
/// all match); a malformed tag matches nothing.
pub fn same_language(a: &str, b: &str) -> bool {
    let primary = |t: &str| language_tag(t).map(|t| t.split('-').next().unwrap_or_default().to_ascii_lowercase());
    matches!((primary(a), primary(b)), (Some(x), Some(y)) if x == y)
}

/// The ISO 639-2/T code of a tag's primary language (what an MP4 `mdhd` holds), if it has one.
pub fn iso639_2t(tag: &str) -> Option<&'static str> {
    language(tag.split('-').next()?).map(|l| l.to_639_3())
}

/// The name of a tag's language in that language, capitalised ("Français"), else in English ("Ewe").
pub fn language_name(tag: &str) -> Option<String> {
    let l = language(tag.split('-').next()?)?;
    let name = l.to_autonym().unwrap_or(l.to_name());
    let mut chars = name.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

/// The language of an ISO 639-1, 639-2/B or 639-2/T (= 639-3 for individual languages) code.
fn language(code: &str) -> Option<isolang::Language> {
    let code = code.to_ascii_lowercase();
    match code.len() {
        2 => isolang::Language::from_639_1(&code),
        3 => isolang::Language::from_639_3(bibliographic_to_terminological(&code).unwrap_or(&code)),
        _ => None,
    }
}

/// ISO 639-2 has a bibliographic code differing from the terminological one for these 20 languages (isolang knows
/// only the latter): the list is fixed by the standard.
fn bibliographic_to_terminological(code: &str) -> Option<&'static str> {
    const B_T: [(&str, &str); 20] = [
        ("alb", "sqi"),
        ("arm", "hye"),
        ("baq", "eus"),
        ("bur", "mya"),
        ("chi", "zho"),
        ("cze", "ces"),
        ("dut", "nld"),
        ("fre", "fra"),
        ("geo", "kat"),
        ("ger", "deu"),
        ("gre", "ell"),
        ("ice", "isl"),
        ("mac", "mkd"),
        ("mao", "mri"),
        ("may", "msa"),
        ("per", "fas"),
        ("rum", "ron"),
        ("slo", "slk"),
        ("tib", "bod"),
        ("wel", "cym"),
    ];
    B_T.iter().find(|(b, _)| *b == code).map(|(_, t)| *t)
}

/// A container's track name, kept when it has printable text: trimmed, control characters dropped, at most 64
/// characters.
pub fn track_title(name: &str) -> Option<String> {
    let t: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
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
    fn language_tags_are_normalised_to_bcp47() {
        for (tag, want) in [
            ("eng", Some("en")),
            ("fre", Some("fr")),
            ("fra", Some("fr")),
            ("ger", Some("de")),
            ("FR_ca", Some("fr-ca")),
            ("pt-BR", Some("pt-BR")),
            ("en", Some("en")),
            ("gsw", Some("gsw")),
            ("yue-Hant", Some("yue-Hant")),
            ("und", None),
            ("mul", None),
            ("", None),
            ("english", None),
            ("e1", None),
            ("en-", None),
            ("fr-toolongsubtag", None),
            ("fr--CA", None),
            ("en\0", Some("en")),
        ] {
            assert_eq!(language_tag(tag).as_deref(), want, "{tag}");
        }
        assert!(same_language("fre", "fr-CA") && same_language("FRA", "fr") && !same_language("fr", "en"));
        assert!(!same_language("und", "und") && !same_language("", ""));
        assert_eq!(iso639_2t("fr-CA"), Some("fra"));
        assert_eq!(iso639_2t("en"), Some("eng"));
        assert_eq!(iso639_2t("xx"), None);
        assert_eq!(language_name("fr").as_deref(), Some("Français"));
        assert_eq!(language_name("de-AT").as_deref(), Some("Deutsch"));
    }

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
