//! Matroska / WebM probing through the `matroska-demuxer` crate over a cached `SourceReader`.

use matroska_demuxer::{DemuxError, MatroskaFile, TrackEntry, TrackType};

use crate::probe::{bitrate, AudioStream, Container, MediaInfo, ProbeError, VideoStream};
use crate::source::{ReadAt, SourceReader};

const EBML_MAGIC: &[u8] = &[0x1A, 0x45, 0xDF, 0xA3];

/// Matroska and WebM: EBML signature, `matroska-demuxer` for the layout, cues for byte ranges.
pub(crate) struct MatroskaFormat;

impl crate::format::ContainerFormat for MatroskaFormat {
    fn containers(&self) -> &'static [Container] {
        &[Container::Matroska, Container::Webm]
    }
    fn detect(&self, head: &[u8]) -> bool {
        head.starts_with(EBML_MAGIC)
    }
    fn could_be(&self, head: &[u8]) -> bool {
        crate::format::starts_like(head, EBML_MAGIC)
    }
    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        probe(src)
    }
    fn needed_ranges(&self, src: &dyn ReadAt, need: crate::Need) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
        crate::mkv_ranges::matroska_needed_ranges(src, need)
    }
}

pub(crate) fn probe(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    let size = src.size();
    check_segment_size(src, size)?;
    let mkv = MatroskaFile::open(SourceReader::new(src)).map_err(map_error)?;
    let container = if mkv.ebml_header().doc_type() == "webm" {
        Container::Webm
    } else {
        Container::Matroska
    };
    let info = mkv.info();
    let duration_secs = match info.duration() {
        Some(d) => {
            let secs = d * info.timestamp_scale().get() as f64 / 1e9;
            if !secs.is_finite() || secs < 0.0 {
                return Err(ProbeError::Corrupt(format!("matroska: invalid duration {d}")));
            }
            secs
        }
        // Live-style files carry no duration; we do not scan clusters for one.
        None => 0.0,
    };

    let mut video = Vec::new();
    let mut audio = Vec::new();
    for track in mkv.tracks() {
        match track.track_type() {
            TrackType::Video => {
                let mut v = video_stream(track, duration_secs)?;
                if video.is_empty() {
                    v.key_frames_ms = crate::mkv_ranges::cue_key_frames(src, track.track_number().get());
                }
                video.push(v);
            }
            TrackType::Audio => audio.push(audio_stream(track, duration_secs)?),
            _ => {}
        }
    }
    Ok(MediaInfo {
        container,
        size,
        duration_secs,
        bitrate: bitrate(size, duration_secs),
        video,
        audio,
    })
}

/// EBML ID of the Segment element.
const SEGMENT_ID: [u8; 4] = [0x18, 0x53, 0x80, 0x67];

/// Reads an EBML variable-length size at `at`: (value, encoded length); `None`
/// as value for the reserved "unknown size".
fn read_vint(b: &[u8], at: usize) -> Option<(Option<u64>, usize)> {
    let first = *b.get(at)?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    let bytes = b.get(at..at.checked_add(len)?)?;
    let mut value = u64::from(first) & (0xFF >> len);
    for &x in &bytes[1..] {
        value = (value << 8) | u64::from(x);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some(((value != all_ones).then_some(value), len))
}

/// Checks the Segment's declared size against the file size (hand-written:
/// matroska-demuxer only reads what it needs and accepts a file cut mid-cluster).
fn check_segment_size(src: &dyn ReadAt, size: u64) -> Result<(), ProbeError> {
    let cut = || ProbeError::Truncated("matroska header cut".into());
    let head = src.read_at(0, 16)?;
    // EBML header: 4-byte ID, then its size.
    let (Some(header_len), n) = read_vint(&head, 4).ok_or_else(cut)? else {
        return Err(ProbeError::Corrupt("EBML header of unknown size".into()));
    };
    let segment_at = header_len
        .checked_add(4 + n as u64)
        .filter(|&s| s < size)
        .ok_or_else(cut)?;
    let seg = src.read_at(segment_at, 12)?;
    if seg.len() < 5 {
        return Err(cut());
    }
    if seg[0..4] != SEGMENT_ID {
        // Something other than a Segment follows (e.g. Void); leave it to the demuxer.
        return Ok(());
    }
    let (seg_len, n) = read_vint(&seg, 4).ok_or_else(cut)?;
    if let Some(seg_len) = seg_len {
        let end = segment_at.saturating_add(4 + n as u64).saturating_add(seg_len);
        if end > size {
            return Err(ProbeError::Truncated(format!(
                "matroska segment ends at byte {end}, the file has {size}"
            )));
        }
    }
    Ok(())
}

fn map_error(e: DemuxError) -> ProbeError {
    match e {
        DemuxError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProbeError::Truncated(format!("matroska: {io}"))
        }
        DemuxError::IoError(io) => ProbeError::Io(io),
        DemuxError::ElementSizeExceedsStream { declared, available } => ProbeError::Truncated(format!(
            "matroska: element claims {declared} bytes, {available} left in the file"
        )),
        DemuxError::UnsupportedDocType(t) => ProbeError::UnsupportedFormat(format!("EBML document type {t:?}")),
        other => ProbeError::Corrupt(format!("matroska: {other}")),
    }
}

fn video_stream(track: &TrackEntry, duration_secs: f64) -> Result<VideoStream, ProbeError> {
    let (width, height) = match track.video() {
        Some(v) => (
            u32::try_from(v.pixel_width().get()).map_err(|_| ProbeError::Corrupt("matroska: huge width".into()))?,
            u32::try_from(v.pixel_height().get()).map_err(|_| ProbeError::Corrupt("matroska: huge height".into()))?,
        ),
        None => (0, 0),
    };
    // DefaultDuration is nanoseconds per frame.
    let frame_rate = track.default_duration().map_or(0.0, |d| 1e9 / d.get() as f64);
    Ok(VideoStream {
        codec: video_codec(track.codec_id()),
        width,
        height,
        frame_rate,
        frame_count: None,
        duration_secs,
        bitrate: None,
        rotation: None,
        pixel_aspect: None,
        key_frames_ms: Vec::new(),
        field_order: None,
    })
}

fn audio_stream(track: &TrackEntry, duration_secs: f64) -> Result<AudioStream, ProbeError> {
    let (channels, sample_rate, bits) = match track.audio() {
        Some(a) => {
            let rate = a.sampling_frequency();
            let rate = if rate.is_finite() && rate > 0.0 && rate < f64::from(u32::MAX) {
                rate.round() as u32
            } else {
                return Err(ProbeError::Corrupt(format!(
                    "matroska: invalid sampling frequency {rate}"
                )));
            };
            (
                u16::try_from(a.channels().get())
                    .map_err(|_| ProbeError::Corrupt("matroska: huge channel count".into()))?,
                rate,
                a.bit_depth().map(|b| b.get()),
            )
        }
        None => (0, 0, None),
    };
    Ok(AudioStream {
        codec: audio_codec(track.codec_id(), bits),
        channels,
        sample_rate,
        duration_secs,
        bitrate: None,
        // LanguageBCP47 overrides Language, whose default is "eng" (Matroska spec; libavformat reads it so too).
        language: crate::probe::language_tag(track.language_bcp47().or(track.language()).unwrap_or("eng")),
        title: track.name().and_then(crate::probe::track_title),
    })
}

fn video_codec(id: &str) -> String {
    let name = match id {
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_AV1" => "av1",
        "V_VP9" => "vp9",
        "V_VP8" => "vp8",
        "V_PRORES" => "prores",
        "V_MPEG2" => "mpeg2video",
        "V_MPEG1" => "mpeg1video",
        "V_MJPEG" => "mjpeg",
        "V_FFV1" => "ffv1",
        "V_THEORA" => "theora",
        "V_UNCOMPRESSED" => "rawvideo",
        _ if id.starts_with("V_MPEG4/ISO/") => "mpeg4",
        _ => return id.to_string(),
    };
    name.into()
}

fn audio_codec(id: &str, bits: Option<u64>) -> String {
    let name = match id {
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        "A_MPEG/L3" => "mp3",
        "A_MPEG/L2" => "mp2",
        "A_AC3" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" => "dts",
        "A_TRUEHD" => "truehd",
        "A_ALAC" => "alac",
        "A_PCM/INT/LIT" => {
            return match bits {
                Some(8) => "pcm_u8".into(),
                Some(b) => format!("pcm_s{b}le"),
                None => "pcm_s16le".into(),
            }
        }
        "A_PCM/INT/BIG" => {
            return match bits {
                Some(8) => "pcm_s8".into(),
                Some(b) => format!("pcm_s{b}be"),
                None => "pcm_s16be".into(),
            }
        }
        "A_PCM/FLOAT/IEEE" => {
            return match bits {
                Some(64) => "pcm_f64le".into(),
                _ => "pcm_f32le".into(),
            }
        }
        _ if id.starts_with("A_AAC") => "aac",
        _ => return id.to_string(),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints() {
        assert_eq!(read_vint(&[0x81], 0), Some((Some(1), 1)));
        assert_eq!(read_vint(&[0x40, 0x02], 0), Some((Some(2), 2)));
        assert_eq!(read_vint(&[0xFF], 0), Some((None, 1)));
        assert_eq!(
            read_vint(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 0),
            Some((None, 8))
        );
        assert_eq!(read_vint(&[0x00, 1, 2], 0), None);
        assert_eq!(read_vint(&[0x10, 1], 0), None);
    }
}
