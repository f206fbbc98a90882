//! MP4 / QuickTime probing: a bounded top-level box walker over `ReadAt`, then `mp4parse` on `ftyp` + `moov`.

use std::io::Cursor;

use mp4parse::{AudioCodecSpecific, CodecType, SampleEntry, Track, TrackType};

use crate::probe::{bitrate, key_frame_list, AudioStream, Container, MediaInfo, ProbeError, VideoStream};
use crate::source::ReadAt;

/// Largest `moov` we are willing to load into memory.
const MAX_MOOV: u64 = 256 << 20;
/// Largest `ftyp` we are willing to load into memory.
const MAX_FTYP: u64 = 4096;
/// Bound on the number of top-level boxes walked (fragmented files have two per fragment: a 3-hour title in
/// half-second fragments has 43,200).
const MAX_TOP_BOXES: usize = 200_000;
/// Bound on one track's samples (9 hours at 60 fps) and on a file's (the sample table of a video track is built
/// in memory, about 50 bytes a sample).
const MAX_TRACK_SAMPLES: u64 = 2_000_000;
const MAX_FILE_SAMPLES: u64 = 4_000_000;

/// Header of one box, positioned in the source.
#[derive(Debug, Clone, Copy)]
struct BoxHeader {
    kind: [u8; 4],
    /// Offset of the box (its size field) in the source.
    offset: u64,
    /// Total size of the box, header included.
    size: u64,
}

fn fourcc_str(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// Reads and validates the top-level box header at `offset` (the box layer, `bmff::header`: a size of 0 runs to
/// the end of the file); a box can never claim bytes that are not there.
fn read_box_header(src: &dyn ReadAt, offset: u64, file_size: u64) -> Result<BoxHeader, ProbeError> {
    let head = src.read_at(offset, 16)?;
    let h = crate::bmff::header(&head, offset, file_size.saturating_sub(offset), true).map_err(|e| match e {
        crate::bmff::BoxError::Truncated(m) => ProbeError::Truncated(m),
        crate::bmff::BoxError::Corrupt(m) => ProbeError::Corrupt(m),
    })?;
    Ok(BoxHeader {
        kind: h.kind,
        offset,
        size: h.size,
    })
}

/// Reads a whole box (header included) into memory.
fn read_box(src: &dyn ReadAt, b: &BoxHeader) -> Result<Vec<u8>, ProbeError> {
    let len =
        usize::try_from(b.size).map_err(|_| ProbeError::Corrupt(format!("'{}' box too large", fourcc_str(&b.kind))))?;
    let data = src.read_at(b.offset, len)?;
    if data.len() != len {
        return Err(ProbeError::Truncated(format!(
            "'{}' box cut short",
            fourcc_str(&b.kind)
        )));
    }
    Ok(data)
}

/// Top-level box types that may start an ISO BMFF / QuickTime file.
const FIRST_BOXES: [&[u8; 4]; 7] = [b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"];

/// ISO BMFF (MP4) and QuickTime (MOV): a known first box, sample tables for the layout and the byte ranges.
pub(crate) struct Mp4Format;

impl crate::format::ContainerFormat for Mp4Format {
    fn containers(&self) -> &'static [Container] {
        &[Container::Mp4, Container::Mov]
    }
    fn detect(&self, head: &[u8]) -> bool {
        head.len() >= 8 && FIRST_BOXES.iter().any(|b| &head[4..8] == *b)
    }
    fn could_be(&self, head: &[u8]) -> bool {
        head.len() > 4
            && FIRST_BOXES
                .iter()
                .any(|b| crate::format::starts_like(&head[4..], &b[..]))
    }
    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        probe(src)
    }
    fn needed_ranges(&self, src: &dyn ReadAt, need: Need) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
        mp4_needed_ranges(src, need)
    }
}

pub(crate) fn probe(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    let file_size = src.size();
    let mut ftyp: Option<Vec<u8>> = None;
    let mut moov: Option<Vec<u8>> = None;
    let mut first_box: Option<[u8; 4]> = None;
    let mut saw_mdat = false;
    let mut offset = 0u64;
    let mut boxes = 0usize;
    // The walk covers every top-level box so that a file cut anywhere is reported as truncated.
    while offset < file_size {
        boxes += 1;
        if boxes > MAX_TOP_BOXES {
            return Err(ProbeError::Corrupt("too many top-level boxes".into()));
        }
        let b = read_box_header(src, offset, file_size)?;
        first_box.get_or_insert(b.kind);
        match &b.kind {
            b"ftyp" if ftyp.is_none() => {
                if b.size > MAX_FTYP {
                    return Err(ProbeError::Corrupt(format!("'ftyp' box of {} bytes", b.size)));
                }
                ftyp = Some(read_box(src, &b)?);
            }
            b"moov" => {
                if moov.is_some() {
                    return Err(ProbeError::Corrupt("more than one 'moov' box".into()));
                }
                if b.size > MAX_MOOV {
                    return Err(ProbeError::Corrupt(format!(
                        "'moov' box of {} bytes is too large",
                        b.size
                    )));
                }
                moov = Some(read_box(src, &b)?);
            }
            b"mdat" => saw_mdat = true,
            _ => {}
        }
        // Cannot overflow: size <= file_size - offset.
        offset += b.size;
    }
    let Some(moov) = moov else {
        return Err(if saw_mdat {
            ProbeError::Truncated("no moov box".into())
        } else {
            ProbeError::Corrupt("no moov box".into())
        });
    };

    let container = match &ftyp {
        Some(f) if f.get(8..12) == Some(b"qt  ".as_slice()) => Container::Mov,
        Some(_) => Container::Mp4,
        None if first_box.is_some_and(|k| &k != b"ftyp") => Container::Mov,
        None => Container::Mp4,
    };

    // The moov body starts after its 8-byte header, or 16 bytes with a largesize.
    let moov_header = if be_u32(&moov, 0) == Some(1) { 16 } else { 8 };
    // Sample tables are checked against their boxes and the file before anything is built from them.
    check_sample_tables(moov.get(moov_header..).unwrap_or_default(), file_size)?;
    check_nested_sizes(moov.get(moov_header..).unwrap_or_default(), None, None, 0)?;
    let mut buf = ftyp.unwrap_or_default();
    buf.extend_from_slice(&moov);
    let ctx = mp4parse::read_mp4(&mut Cursor::new(&buf)).map_err(map_mp4parse_error)?;
    let moov_info = walk_moov(moov.get(moov_header..).unwrap_or_default());

    let mut video = Vec::new();
    let mut audio = Vec::new();
    let mut longest = 0.0f64;
    for track in ctx.tracks.iter() {
        let raw = moov_info.traks.get(track.id);
        let duration_secs = track_duration(track);
        match track.track_type {
            TrackType::Video => {
                let v = video_stream(track, raw, duration_secs);
                longest = longest.max(v.duration_secs);
                video.push(v);
            }
            TrackType::Audio => {
                let a = audio_stream(track, raw, duration_secs);
                longest = longest.max(a.duration_secs);
                audio.push(a);
            }
            _ => {}
        }
    }

    let duration_secs = match moov_info.movie_duration {
        Some(d) if d > 0.0 => d,
        _ => longest,
    };
    Ok(MediaInfo {
        container,
        size: file_size,
        duration_secs,
        bitrate: bitrate(file_size, duration_secs),
        video,
        audio,
    })
}

fn map_mp4parse_error(e: mp4parse::Error) -> ProbeError {
    match e {
        mp4parse::Error::Io(io) => ProbeError::Io(io),
        mp4parse::Error::Unsupported(what) => ProbeError::UnsupportedFormat(format!("mp4: {what}")),
        mp4parse::Error::MoovMissing => ProbeError::Corrupt("no usable moov box".into()),
        // The moov was read whole, so running out of bytes means inconsistent inner sizes.
        other => ProbeError::Corrupt(format!("mp4: {other}")),
    }
}

/// Duration of a track from its media header (mdhd), or from its sample
/// table when the header carries none (fragmented files).
fn track_duration(track: &Track) -> f64 {
    let Some(scale) = track.timescale.map(|t| t.0).filter(|&t| t > 0) else {
        return 0.0;
    };
    let units = match track.duration.map(|d| d.0) {
        Some(d) if d > 0 && d != u64::from(u32::MAX) && d != u64::MAX => d,
        _ => track
            .stts
            .as_ref()
            .map(|stts| {
                stts.samples.iter().fold(0u64, |acc, s| {
                    acc.saturating_add(u64::from(s.sample_count).saturating_mul(u64::from(s.sample_delta)))
                })
            })
            .unwrap_or(0),
    };
    units as f64 / scale as f64
}

fn sample_count(track: &Track) -> Option<u64> {
    let stts = track.stts.as_ref()?;
    Some(
        stts.samples
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(u64::from(s.sample_count))),
    )
}

fn payload_bytes(track: &Track) -> Option<u64> {
    let stsz = track.stsz.as_ref()?;
    if stsz.sample_size != 0 {
        return Some(u64::from(stsz.sample_size).saturating_mul(sample_count(track)?));
    }
    Some(
        stsz.sample_sizes
            .iter()
            .fold(0u64, |acc, &s| acc.saturating_add(u64::from(s))),
    )
}

fn video_stream(track: &Track, raw: Option<&RawTrak>, duration_secs: f64) -> VideoStream {
    let entry = track.stsd.as_ref().and_then(|s| s.descriptions.first());
    let (mut codec, mut width, mut height) = (None, 0u32, 0u32);
    if let Some(SampleEntry::Video(v)) = entry {
        codec = codec_name(v.codec_type);
        width = u32::from(v.width);
        height = u32::from(v.height);
    }
    if let Some(raw) = raw {
        if width == 0 || height == 0 {
            width = u32::from(raw.width);
            height = u32::from(raw.height);
        }
        if codec.is_none() {
            codec = Some(fourcc_codec(&raw.fourcc));
        }
    }
    if width == 0 || height == 0 {
        // Fall back to the track header's presentation size (16.16 fixed point).
        if let Some(tkhd) = &track.tkhd {
            width = tkhd.width >> 16;
            height = tkhd.height >> 16;
        }
    }
    let frame_count = sample_count(track);
    let frame_rate = match frame_count {
        Some(n) if duration_secs > 0.0 => n as f64 / duration_secs,
        _ => 0.0,
    };
    VideoStream {
        codec: codec.unwrap_or_else(|| "unknown".into()),
        width,
        height,
        frame_rate,
        frame_count,
        duration_secs,
        bitrate: payload_bytes(track).and_then(|b| bitrate(b, duration_secs)),
        rotation: track.tkhd.as_ref().map(|t| rotation(t.matrix.a, t.matrix.b)),
        pixel_aspect: raw.and_then(|r| r.pixel_aspect),
        key_frames_ms: key_frames(track),
        field_order: None,
    }
}

/// Presentation times of the sync samples, from the first presented sample (edit lists and composition offsets
/// shift both alike); empty without a sample table (fragmented files) and when every sample is a sync sample
/// (intra-only codecs: any chunk boundary is as good as another).
fn key_frames(track: &Track) -> Vec<u64> {
    let (Some(table), Some(scale)) = (
        mp4parse::unstable::create_sample_table(track, 0i64.into()),
        track.timescale.map(|t| t.0).filter(|t| *t > 0),
    ) else {
        return Vec::new();
    };
    let secs = |ticks: i64| ticks as f64 / scale as f64;
    let Some(origin) = table.iter().map(|s| s.start_composition.0).min() else {
        return Vec::new();
    };
    if table.iter().all(|s| s.sync) {
        return Vec::new();
    }
    key_frame_list(
        table.iter().filter(|s| s.sync).map(|s| secs(s.start_composition.0)),
        secs(origin),
    )
}

/// Clockwise rotation in degrees from the (a, b) entries of a track matrix.
fn rotation(a: i32, b: i32) -> i32 {
    let deg = f64::from(b).atan2(f64::from(a)).to_degrees();
    // Snap to whole degrees in 0..360.
    let deg = deg.round() as i32;
    deg.rem_euclid(360)
}

fn audio_stream(track: &Track, raw: Option<&RawTrak>, duration_secs: f64) -> AudioStream {
    let entry = track.stsd.as_ref().and_then(|s| s.descriptions.first());
    let (mut codec, mut channels, mut sample_rate) = (None, 0u32, 0u32);
    if let Some(SampleEntry::Audio(a)) = entry {
        codec = codec_name(a.codec_type);
        channels = a.channelcount;
        sample_rate = if a.samplerate.is_finite() && a.samplerate > 0.0 && a.samplerate < f64::from(u32::MAX) {
            a.samplerate.round() as u32
        } else {
            0
        };
        if let AudioCodecSpecific::ES_Descriptor(es) = &a.codec_specific {
            if let Some(c) = es.audio_channel_count.filter(|&c| c > 0) {
                channels = u32::from(c);
            }
            if let Some(r) = es.audio_sample_rate.filter(|&r| r > 0) {
                sample_rate = r;
            }
        }
        if a.codec_type == CodecType::LPCM {
            codec = None;
        }
    }
    if let Some(raw) = raw {
        if codec.is_none() {
            codec = Some(pcm_codec(raw).unwrap_or_else(|| fourcc_codec(&raw.fourcc)));
        }
        if channels == 0 {
            channels = u32::from(raw.channels);
        }
        if sample_rate == 0 {
            sample_rate = raw.sample_rate;
        }
    }
    if sample_rate == 0 {
        sample_rate = track
            .timescale
            .map(|t| t.0)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0);
    }
    AudioStream {
        codec: codec.unwrap_or_else(|| "unknown".into()),
        channels: u16::try_from(channels).unwrap_or(u16::MAX),
        sample_rate,
        duration_secs,
        bitrate: payload_bytes(track).and_then(|b| bitrate(b, duration_secs)),
        language: raw
            .and_then(|r| r.language.as_deref())
            .and_then(crate::probe::language_tag),
        title: None,
    }
}

fn codec_name(c: CodecType) -> Option<String> {
    let name = match c {
        CodecType::H264 => "h264",
        CodecType::MP4V => "mpeg4",
        CodecType::AV1 => "av1",
        CodecType::VP9 => "vp9",
        CodecType::VP8 => "vp8",
        CodecType::H263 => "h263",
        CodecType::AAC => "aac",
        CodecType::MP3 => "mp3",
        CodecType::FLAC => "flac",
        CodecType::Opus => "opus",
        CodecType::ALAC => "alac",
        _ => return None,
    };
    Some(name.into())
}

/// Codec name for a sample entry fourcc that mp4parse does not classify.
fn fourcc_codec(fourcc: &[u8; 4]) -> String {
    let name = match fourcc {
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => "hevc",
        b"avc1" | b"avc3" | b"dva1" | b"dvav" => "h264",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"vp08" => "vp8",
        b"mp4v" => "mpeg4",
        b"mjpa" | b"mjpb" | b"jpeg" => "mjpeg",
        b"raw " | b"2vuy" | b"yuv2" | b"v210" => "rawvideo",
        b"dnxh" | b"AVdn" | b"AVdh" => "dnxhd",
        b"mp4a" => "aac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b".mp3" => "mp3",
        b"alac" => "alac",
        b"sowt" => "pcm_s16le",
        b"twos" => "pcm_s16be",
        b"in24" => "pcm_s24be",
        b"in32" => "pcm_s32be",
        b"fl32" => "pcm_f32be",
        b"fl64" => "pcm_f64be",
        b"alaw" => "pcm_alaw",
        b"ulaw" => "pcm_mulaw",
        _ => {
            return String::from_utf8_lossy(fourcc).trim().to_string();
        }
    };
    name.into()
}

/// Name for ISO `ipcm`/`fpcm`/QuickTime `lpcm` entries, from the sample size.
fn pcm_codec(raw: &RawTrak) -> Option<String> {
    let float = match &raw.fourcc {
        b"ipcm" | b"lpcm" => false,
        b"fpcm" => true,
        _ => return None,
    };
    let bits = raw.sample_size;
    Some(match (float, bits) {
        (true, 64) => "pcm_f64le".into(),
        (true, _) => "pcm_f32le".into(),
        (false, 8) => "pcm_s8".into(),
        (false, 0) => "pcm".into(),
        (false, b) => format!("pcm_s{b}le"),
    })
}

/// What our own walk of `moov` finds that mp4parse does not expose.
#[derive(Debug, Default)]
struct MoovInfo {
    /// mvhd duration in seconds.
    movie_duration: Option<f64>,
    /// One entry per `trak`, in file order (the order mp4parse numbers tracks).
    traks: Vec<RawTrak>,
}

/// The first sample entry of a track's `stsd`, read by hand because mp4parse
/// drops entries whose codec it does not know (HEVC, ProRes, QuickTime PCM...).
#[derive(Debug, Default)]
struct RawTrak {
    fourcc: [u8; 4],
    width: u16,
    height: u16,
    channels: u16,
    sample_size: u16,
    sample_rate: u32,
    /// `pasp` of a visual sample entry, if not 1:1.
    pixel_aspect: Option<(u32, u32)>,
    /// The ISO 639-2/T code of `mdhd`.
    language: Option<String>,
}

/// Child boxes of an in-memory box body, lenient (the box layer stops at the first malformed header; mp4parse
/// has already validated the structure, this walk is best-effort).
fn children(body: &[u8]) -> Vec<([u8; 4], &[u8])> {
    crate::bmff::boxes(body, 0..body.len(), crate::bmff::Policy::Lenient)
        .unwrap_or_default()
        .into_iter()
        .map(|b| (b.kind, b.body(body)))
        .collect()
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).into_iter().find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// What one track's sample tables claim, read from their boxes.
#[derive(Debug, Default)]
struct Claims {
    /// Samples counted by `stts`, `stsz`, and `stsc` × the chunk count.
    stts: u64,
    stsz: u64,
    stsc: u64,
    /// Bytes of all samples (`stsz`).
    payload: u64,
}

/// Checks every track's sample tables before mp4parse reads them and before any table is built from them
/// (hand-written: mp4parse reserves what a box's entry count claims): each table's entry count fits its box, the
/// tables agree on the sample count (`stts`, `stsz`, `stsc` over `stco`), the count is bounded, the samples' bytes
/// fit in the file, and every chunk starts inside it. A 5 KB file claiming millions of samples is refused here.
fn check_sample_tables(moov_body: &[u8], file_size: u64) -> Result<(), ProbeError> {
    let mut file_samples = 0u64;
    for (kind, trak) in children(moov_body) {
        if &kind != b"trak" {
            continue;
        }
        let Some(stbl) = child(trak, b"mdia")
            .and_then(|m| child(m, b"minf"))
            .and_then(|m| child(m, b"stbl"))
        else {
            continue;
        };
        let c = claims(stbl, file_size)?;
        let samples = c.stsz.max(c.stts);
        if c.stts != c.stsz || c.stsc != c.stsz {
            return Err(ProbeError::Corrupt(format!(
                "sample tables disagree: stts counts {} samples, stsz {}, stsc over stco {}",
                c.stts, c.stsz, c.stsc
            )));
        }
        if samples > MAX_TRACK_SAMPLES {
            return Err(ProbeError::Corrupt(format!(
                "a track claims {samples} samples (at most {MAX_TRACK_SAMPLES})"
            )));
        }
        file_samples += samples;
        if file_samples > MAX_FILE_SAMPLES {
            return Err(ProbeError::Corrupt(format!(
                "the tracks claim more than {MAX_FILE_SAMPLES} samples"
            )));
        }
        if c.payload > file_size {
            return Err(ProbeError::Corrupt(format!(
                "the sample tables claim {} bytes of samples; the file has {file_size}",
                c.payload
            )));
        }
    }
    Ok(())
}

/// Bound on [`check_nested_sizes`]'s recursion (the containers mp4parse reads nest about ten deep).
const MAX_NESTING: usize = 16;

/// Checks that every box inside the containers mp4parse walks — down to the boxes of the sample entries — fits in
/// its parent (hand-written: mp4parse reserves the size a box claims before reading it, so a 40-byte `hdlr` claiming
/// 4 GiB would cost a 4 GiB allocation). `parent` is the kind of the box whose children `body` holds, `handler` the
/// track's `hdlr` type (which tells where a sample entry's boxes start).
fn check_nested_sizes(
    body: &[u8],
    parent: Option<[u8; 4]>,
    handler: Option<[u8; 4]>,
    depth: usize,
) -> Result<(), ProbeError> {
    if depth > MAX_NESTING {
        return Ok(());
    }
    let mut pos = 0usize;
    while body.len() - pos >= 8 {
        let h = match crate::bmff::header(&body[pos..], pos as u64, (body.len() - pos) as u64, false) {
            Ok(h) => h,
            // mp4parse reads `meta` as a full box, which a QuickTime `meta` is not: there, a box that does not fit
            // is the QuickTime layout misread, which mp4parse skips without reading.
            Err(crate::bmff::BoxError::Truncated(_)) if parent == Some(*b"meta") => return Ok(()),
            Err(crate::bmff::BoxError::Truncated(m)) => return Err(ProbeError::Corrupt(m)),
            // A size of 0 or below its header: mp4parse stops or fails there, reserving nothing.
            Err(crate::bmff::BoxError::Corrupt(_)) => return Ok(()),
        };
        // `h.size <= body.len() - pos` (checked by `header`).
        let inner = &body[pos + h.len as usize..pos + h.size as usize];
        let handler = match &h.kind {
            b"mdia" => child(inner, b"hdlr")
                .and_then(|hdlr| hdlr.get(8..12))
                .and_then(|t| <[u8; 4]>::try_from(t).ok()),
            _ => handler,
        };
        // mp4parse reserves the entries a `stsd` or `dref` counts (each needs at least a box header) and an `elst`
        // counts (12 bytes each, 20 in version 1); the sample tables are `check_sample_tables`'s.
        let entry_size = match &h.kind {
            b"stsd" | b"dref" => Some(8),
            b"elst" if inner.first() == Some(&1) => Some(20),
            b"elst" => Some(12),
            _ => None,
        };
        if let Some(entry_size) = entry_size {
            table(&h.kind, inner, entry_size, 4)?;
        }
        // Where the box's own boxes start, if it has any that mp4parse reads.
        let skip = match (parent.as_ref(), &h.kind) {
            // A sample entry: visual fields, or sound fields that grow with the QuickTime version.
            (Some(b"stsd"), _) => match handler.as_ref() {
                Some(b"vide") => Some(78),
                Some(b"soun") => match inner.get(8..10) {
                    Some([0, 0]) => Some(28),
                    Some([0, 1]) => Some(44),
                    Some([0, 2]) => Some(64),
                    _ => None,
                },
                _ => None,
            },
            // A metadata item (`©nam`...): its `data` boxes are read whole.
            (Some(b"ilst"), _) => Some(0),
            (_, b"meta") => Some(4),
            (
                _,
                b"moov" | b"trak" | b"edts" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"udta" | b"sinf"
                | b"schi" | b"ilst",
            ) => Some(0),
            (_, b"stsd" | b"dref") => Some(8),
            _ => None,
        };
        if let Some(children) = skip.and_then(|skip| inner.get(skip..)) {
            check_nested_sizes(children, Some(h.kind), handler, depth + 1)?;
        }
        pos += h.size as usize;
    }
    Ok(())
}

/// A full box's entry count (after version/flags and `skip` more bytes) and its entries, if `count` entries of
/// `entry` bytes fit the box.
fn table<'a>(kind: &[u8; 4], body: &'a [u8], entry: u64, skip: usize) -> Result<(u64, &'a [u8]), ProbeError> {
    let n =
        u64::from(be_u32(body, skip).ok_or_else(|| ProbeError::Corrupt(format!("'{}' cut short", fourcc_str(kind))))?);
    let entries = body.get(skip + 4..).unwrap_or_default();
    if n.saturating_mul(entry) > entries.len() as u64 {
        return Err(ProbeError::Corrupt(format!(
            "'{}' claims {n} entries in {} bytes",
            fourcc_str(kind),
            entries.len()
        )));
    }
    Ok((n, entries))
}

/// One track's claims; an error if a table's entry count does not fit its box or a chunk lies outside the file.
fn claims(stbl: &[u8], file_size: u64) -> Result<Claims, ProbeError> {
    let mut c = Claims::default();
    let mut chunks = 0u64;
    let mut stsc: Vec<(u64, u64)> = Vec::new();
    for (kind, body) in children(stbl) {
        match &kind {
            b"stts" => {
                let (n, e) = table(&kind, body, 8, 4)?;
                for i in 0..n as usize {
                    c.stts = c.stts.saturating_add(u64::from(be_u32(e, i * 8).unwrap_or(0)));
                }
            }
            b"stsz" => {
                let size = be_u32(body, 4).unwrap_or(0);
                if size == 0 {
                    let (n, e) = table(&kind, body, 4, 8)?;
                    c.stsz = n;
                    for i in 0..n as usize {
                        c.payload = c.payload.saturating_add(u64::from(be_u32(e, i * 4).unwrap_or(0)));
                    }
                } else {
                    c.stsz = u64::from(be_u32(body, 8).unwrap_or(0));
                    c.payload = c.stsz.saturating_mul(u64::from(size));
                }
            }
            b"stsc" => {
                let (n, e) = table(&kind, body, 12, 4)?;
                for i in 0..n as usize {
                    let first = u64::from(be_u32(e, i * 12).unwrap_or(0));
                    let per = u64::from(be_u32(e, i * 12 + 4).unwrap_or(0));
                    stsc.push((first, per));
                }
            }
            b"stco" | b"co64" => {
                let width = if &kind == b"stco" { 4 } else { 8 };
                let (n, e) = table(&kind, body, width, 4)?;
                chunks = n;
                for i in 0..n as usize {
                    let at = if width == 4 {
                        be_u32(e, i * 4).map(u64::from)
                    } else {
                        be_u64(e, i * 8)
                    };
                    if at.unwrap_or(0) >= file_size {
                        return Err(ProbeError::Corrupt(format!(
                            "a chunk starts at {}, past the end of the file ({file_size} bytes)",
                            at.unwrap_or(0)
                        )));
                    }
                }
            }
            b"ctts" => {
                table(&kind, body, 8, 4)?;
            }
            b"stss" => {
                table(&kind, body, 4, 4)?;
            }
            _ => {}
        }
    }
    // Samples of the chunks: each stsc run covers its chunks up to the next run's first chunk.
    for (i, &(first, per)) in stsc.iter().enumerate() {
        let end = stsc.get(i + 1).map_or(chunks + 1, |n| n.0);
        if first == 0 || end < first || end > chunks + 1 {
            return Err(ProbeError::Corrupt(
                "'stsc' runs are out of order or past the chunks".into(),
            ));
        }
        c.stsc = c.stsc.saturating_add((end - first).saturating_mul(per));
    }
    Ok(c)
}

fn walk_moov(moov_body: &[u8]) -> MoovInfo {
    let mut info = MoovInfo::default();
    for (kind, body) in children(moov_body) {
        match &kind {
            b"mvhd" => info.movie_duration = mvhd_duration(body),
            b"trak" => info.traks.push(raw_trak(body)),
            _ => {}
        }
    }
    info
}

fn mvhd_duration(body: &[u8]) -> Option<f64> {
    let (scale, duration) = match body.first()? {
        0 => (be_u32(body, 12)?, u64::from(be_u32(body, 16)?)),
        1 => (be_u32(body, 20)?, be_u64(body, 24)?),
        _ => return None,
    };
    if scale == 0 || duration == u64::from(u32::MAX) || duration == u64::MAX {
        return None;
    }
    Some(duration as f64 / f64::from(scale))
}

fn raw_trak(trak: &[u8]) -> RawTrak {
    let mut raw = RawTrak {
        language: child(trak, b"mdia")
            .and_then(|m| child(m, b"mdhd"))
            .and_then(mdhd_language),
        ..RawTrak::default()
    };
    let Some(stsd) = child(trak, b"mdia")
        .and_then(|m| child(m, b"minf"))
        .and_then(|m| child(m, b"stbl"))
        .and_then(|s| child(s, b"stsd"))
    else {
        return raw;
    };
    // Full box header (4) + entry count (4), then the entries as boxes.
    let Some((kind, entry)) = stsd.get(8..).and_then(|e| children(e).into_iter().next()) else {
        return raw;
    };
    raw.fourcc = kind;
    // Visual sample entry: 6 reserved + 2 data ref + 16 pre-defined, then width, height.
    raw.width = be_u16(entry, 24).unwrap_or(0);
    raw.height = be_u16(entry, 26).unwrap_or(0);
    // Audio sample entry: 6 + 2, version (2) + revision (2) + vendor (4), then
    // channel count, sample size, 4 bytes, sample rate (16.16).
    raw.channels = be_u16(entry, 16).unwrap_or(0);
    raw.sample_size = be_u16(entry, 18).unwrap_or(0);
    raw.sample_rate = be_u32(entry, 24).map(|r| r >> 16).unwrap_or(0);
    // Visual sample entries carry child boxes after their 78 fixed bytes; `pasp` = hSpacing, vSpacing.
    raw.pixel_aspect = entry
        .get(78..)
        .and_then(|c| child(c, b"pasp"))
        .and_then(|p| Some((be_u32(p, 0)?, be_u32(p, 4)?)))
        .filter(|&(h, v)| {
            let (h64, v64) = (u64::from(h), u64::from(v));
            h > 0 && v > 0 && h != v && h64 <= 1000 * v64 && v64 <= 1000 * h64
        });
    raw
}

/// The packed ISO 639-2/T language of an `mdhd` body (three 5-bit letters, each + 0x60), after its times.
fn mdhd_language(mdhd: &[u8]) -> Option<String> {
    let at = match mdhd.first()? {
        0 => 4 + 16,
        1 => 4 + 28,
        _ => return None,
    };
    let packed = be_u16(mdhd, at)?;
    let letters: Vec<u8> = [10, 5, 0]
        .iter()
        .map(|s| (((packed >> s) & 0x1f) as u8) + 0x60)
        .collect();
    letters
        .iter()
        .all(u8::is_ascii_lowercase)
        .then(|| String::from_utf8_lossy(&letters).into_owned())
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdhd_language_is_unpacked() {
        // "fra": f=6, r=18, a=1 -> 0b0_00110_10010_00001.
        let packed: u16 = (6 << 10) | (18 << 5) | 1;
        let mut v0 = vec![0u8; 24];
        v0[20..22].copy_from_slice(&packed.to_be_bytes());
        assert_eq!(mdhd_language(&v0).as_deref(), Some("fra"));
        let mut v1 = vec![1u8; 36];
        v1[32..34].copy_from_slice(&packed.to_be_bytes());
        assert_eq!(mdhd_language(&v1).as_deref(), Some("fra"));
        assert_eq!(mdhd_language(&[0u8; 24]), None);
        assert_eq!(mdhd_language(&v0[..21]), None);
        assert_eq!(mdhd_language(&[2u8; 24]), None);
    }

    #[test]
    fn rotation_from_matrix() {
        assert_eq!(rotation(0x10000, 0), 0);
        assert_eq!(rotation(0, 0x10000), 90);
        assert_eq!(rotation(-0x10000, 0), 180);
        assert_eq!(rotation(0, -0x10000), 270);
    }

    #[test]
    fn box_sizes_are_checked() {
        // A box claiming 10 GB in a 1 KB file.
        let mut f = vec![0u8; 1024];
        f[0..4].copy_from_slice(&1u32.to_be_bytes());
        f[4..8].copy_from_slice(b"ftyp");
        f[8..16].copy_from_slice(&10_000_000_000u64.to_be_bytes());
        assert!(matches!(probe(&f), Err(ProbeError::Truncated(_))));
        // Size smaller than a header.
        f[0..4].copy_from_slice(&5u32.to_be_bytes());
        assert!(matches!(probe(&f), Err(ProbeError::Corrupt(_))));
        // Largesize smaller than its header.
        f[0..4].copy_from_slice(&1u32.to_be_bytes());
        f[8..16].copy_from_slice(&9u64.to_be_bytes());
        assert!(matches!(probe(&f), Err(ProbeError::Corrupt(_))));
        // Size 0 = to the end: no moov anywhere.
        f[0..4].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(probe(&f), Err(ProbeError::Corrupt(_))));
    }

    #[test]
    fn children_tolerate_garbage() {
        assert!(children(&[0, 0, 0, 1, b'a', b'b', b'c', b'd', 0xff]).is_empty());
        assert!(children(&[0xff; 40]).is_empty());
        let mut b = vec![0, 0, 0, 12];
        b.extend_from_slice(b"abcd1234");
        assert_eq!(children(&b), vec![(*b"abcd", &b"1234"[..])]);
    }
}

/// What one encoder task decodes from a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Need {
    /// The first video track's samples covering `[start_secs, end_secs)`.
    Video { start_secs: f64, end_secs: f64 },
    /// Every audio track, whole.
    Audio,
}

/// Seconds of every track always included, so that a demuxer probing its streams finds real samples.
pub(crate) const PROBE_PREFIX_SECS: f64 = 1.0;
/// Seconds before a chunk's start from which the previous sync sample is taken (the decoder may seek further back
/// than the exact key frame when timestamps carry composition offsets).
pub(crate) const SEEK_MARGIN_SECS: f64 = 2.0;
/// Samples kept after the last one a chunk needs (decoder and parser read-ahead).
const READ_AHEAD_SAMPLES: usize = 32;
/// Ranges closer than this are fetched as one.
pub(crate) const MERGE_GAP: u64 = 256 * 1024;

/// Byte ranges `[start, end)` of an MP4/MOV that a decoder needs for `need`: every top-level box but `mdat`, the
/// first second of every track, and the wanted track's samples from the sync sample at or before (start − 2 s) to
/// a second (plus a margin of samples) after the end. `Ok(None)` when ranges cannot be planned (fragmented file, no sample
/// tables): read the whole file.
pub fn mp4_needed_ranges(src: &dyn ReadAt, need: Need) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
    let file_size = src.size();
    let mut ranges = Vec::new();
    let (mut ftyp, mut moov) = (Vec::new(), None);
    let mut offset = 0u64;
    let mut boxes = 0usize;
    while offset < file_size {
        boxes += 1;
        if boxes > MAX_TOP_BOXES {
            return Err(ProbeError::Corrupt("too many top-level boxes".into()));
        }
        let b = read_box_header(src, offset, file_size)?;
        match &b.kind {
            b"mdat" => {}
            b"moof" => return Ok(None),
            kind => {
                ranges.push((b.offset, b.offset + b.size));
                if kind == b"ftyp" && b.size <= MAX_FTYP {
                    ftyp = read_box(src, &b)?;
                } else if kind == b"moov" {
                    if b.size > MAX_MOOV {
                        return Err(ProbeError::Corrupt(format!(
                            "'moov' box of {} bytes is too large",
                            b.size
                        )));
                    }
                    moov = Some(read_box(src, &b)?);
                }
            }
        }
        offset += b.size;
    }
    let Some(moov) = moov else {
        return Ok(None);
    };
    // The probe's checks (this may run on a file the probe did not see): no table or box claims what is not there.
    let moov_body = moov
        .get(if be_u32(&moov, 0) == Some(1) { 16 } else { 8 }..)
        .unwrap_or_default();
    check_sample_tables(moov_body, file_size)?;
    check_nested_sizes(moov_body, None, None, 0)?;
    let mut buf = ftyp;
    buf.extend_from_slice(&moov);
    let ctx = mp4parse::read_mp4(&mut Cursor::new(&buf)).map_err(map_mp4parse_error)?;
    let want_type = match need {
        Need::Video { .. } => TrackType::Video,
        Need::Audio => TrackType::Audio,
    };
    let mut wanted_seen = false;
    for track in ctx.tracks.iter() {
        if !matches!(track.track_type, TrackType::Video | TrackType::Audio) {
            continue;
        }
        let Some(table) = mp4parse::unstable::create_sample_table(track, 0i64.into()) else {
            return Ok(None);
        };
        let Some(scale) = track.timescale.map(|t| t.0).filter(|t| *t > 0) else {
            return Ok(None);
        };
        let secs = |ticks: i64| ticks as f64 / scale as f64;
        let sample = |i: usize| -> Option<(u64, u64, f64, bool)> {
            let s = table.get(i)?;
            Some((s.start_offset.0, s.end_offset.0, secs(s.start_composition.0), s.sync))
        };
        // The first second of every track.
        for i in 0..table.len() {
            let Some((a, z, t, _)) = sample(i) else { break };
            if t >= PROBE_PREFIX_SECS && i > 0 {
                break;
            }
            ranges.push((a, z));
        }
        // Video: the first video track; audio: every audio track (a job may encode several languages).
        let is_wanted = track.track_type == want_type && (need == Need::Audio || !wanted_seen);
        if !is_wanted {
            continue;
        }
        wanted_seen = true;
        let (first, last) = match need {
            Need::Audio => (0, table.len()),
            Need::Video { start_secs, end_secs } => {
                let from = start_secs - SEEK_MARGIN_SECS;
                let first = (0..table.len())
                    .rev()
                    .find(|&i| sample(i).is_some_and(|(_, _, t, sync)| sync && t <= from))
                    .unwrap_or(0);
                // Past the end: the decoder and the demuxer's parser read ahead (B-frame reordering), so keep
                // a second of samples beyond the end plus a margin.
                let last = (first..table.len())
                    .find(|&i| sample(i).is_some_and(|(_, _, t, _)| t >= end_secs + 1.0))
                    .map_or(table.len(), |i| (i + READ_AHEAD_SAMPLES).min(table.len()));
                (first, last)
            }
        };
        for i in first..last {
            let Some((a, z, _, _)) = sample(i) else { break };
            ranges.push((a, z));
        }
    }
    if !wanted_seen {
        return Ok(None);
    }
    Ok(Some(merge_ranges(ranges, file_size)))
}

/// Sorts, drops empty or out-of-file ranges, and merges ranges closer than [`MERGE_GAP`].
pub(crate) fn merge_ranges(mut ranges: Vec<(u64, u64)>, file_size: u64) -> Vec<(u64, u64)> {
    ranges.retain(|(a, z)| a < z && *z <= file_size);
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, z) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(MERGE_GAP) => last.1 = last.1.max(z),
            _ => merged.push((a, z)),
        }
    }
    merged
}
