//! The containers `vod-media` does not read itself — MPEG-TS/M2TS, MXF, AVI, ASF (WMV/WMA), FLV, MPEG-PS, MP3, ADTS
//! AAC, FLAC, Ogg — probed with libavformat, as the ingest function's extra [`ContainerFormat`]s:
//! - detection: libavformat's own probe functions score the file's first bytes; the best guess is accepted only if
//!   its demuxer is on the allow-list ([`ACCEPTED`]), and a file another demuxer recognises is refused by name
//!   ([`Refused`]);
//! - probing: the accepted demuxer alone is opened (no detection at open, no protocol: the bytes come from a custom
//!   I/O context over the [`ReadAt`] source, which in ingest is the budgeted, block-caching reader of the upload in
//!   S3), with bounded `probesize`/`analyzeduration`, so a probe reads the head, and the tail where the demuxer
//!   estimates the duration from timestamps, never the whole file;
//! - these containers carry no index the job planner can use: key-frame lists stay empty and tasks read the whole
//!   file (`ContainerFormat::needed_ranges` is the default `None`).
use std::ffi::{CStr, CString};
use std::os::raw::{c_int, c_void};

use ffmpeg_next::ffi;
use vod_media::{AudioStream, Container, ContainerFormat, FieldOrder, MediaInfo, ProbeError, ReadAt, VideoStream};

/// The demuxers the probe (and so the encoder) opens, and the container each one is.
pub const ACCEPTED: &[(&str, Container)] = &[
    ("mpegts", Container::MpegTs),
    ("mxf", Container::Mxf),
    ("avi", Container::Avi),
    ("asf", Container::Asf),
    ("flv", Container::Flv),
    ("mpeg", Container::MpegPs),
    ("mp3", Container::Mp3),
    ("aac", Container::Aac),
    ("flac", Container::Flac),
    ("ogg", Container::Ogg),
];

/// The formats to register with the probe: the accepted containers, then the refusal of every other one libavformat
/// recognises.
pub static FORMATS: &[&dyn ContainerFormat] = &[&LibavFormat, &Refused];

/// Most bytes libavformat may read to find the streams' parameters (`probesize`).
const PROBE_SIZE: i64 = 8 << 20;
/// Most media time it may analyse for them (`analyzeduration`, microseconds).
const ANALYZE_DURATION: i64 = 10_000_000;
/// Detection scores at or below this are guesses libavformat itself would retry with more data: not a detection.
const MIN_SCORE: c_int = 25;
/// Bytes of the custom I/O context's buffer.
const IO_BUFFER: usize = 64 * 1024;

/// What libavformat's probe functions make of a file's first bytes: the best demuxer's short and long names.
fn guess(head: &[u8]) -> Option<(String, String)> {
    if head.is_empty() || init().is_err() {
        return None;
    }
    // libavformat's probe functions read up to AVPROBE_PADDING_SIZE bytes past the data: they must be zeros.
    let mut buf = head.to_vec();
    buf.extend_from_slice(&[0u8; ffi::AVPROBE_PADDING_SIZE as usize]);
    let empty = c"";
    let pd = ffi::AVProbeData {
        filename: empty.as_ptr(),
        buf: buf.as_mut_ptr(),
        buf_size: head.len().min(i32::MAX as usize) as c_int,
        mime_type: std::ptr::null(),
    };
    let mut score: c_int = 0;
    // SAFETY: pd points at a padded buffer that outlives the call; av_probe_input_format3 only reads it and returns
    // a static demuxer description (or null).
    let fmt = unsafe { ffi::av_probe_input_format3(&pd, 1, &mut score) };
    if fmt.is_null() || score <= MIN_SCORE {
        return None;
    }
    // SAFETY: a demuxer description's names are static NUL-terminated strings (long_name may be null).
    unsafe {
        let name = CStr::from_ptr((*fmt).name).to_string_lossy().into_owned();
        let long = if (*fmt).long_name.is_null() {
            name.clone()
        } else {
            CStr::from_ptr((*fmt).long_name).to_string_lossy().into_owned()
        };
        Some((name, long))
    }
}

/// The accepted container a guess names (a demuxer may list several names, `mov,mp4,…`).
fn accepted(name: &str) -> Option<(&'static str, Container)> {
    name.split(',')
        .find_map(|n| ACCEPTED.iter().find(|(d, _)| *d == n).copied())
}

fn init() -> Result<(), String> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg_next::init().map_err(|e| e.to_string())?;
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
        Ok(())
    })
    .clone()
}

/// The accepted containers, read by libavformat.
pub struct LibavFormat;

impl ContainerFormat for LibavFormat {
    fn containers(&self) -> &'static [Container] {
        &[
            Container::MpegTs,
            Container::Mxf,
            Container::Avi,
            Container::Asf,
            Container::Flv,
            Container::MpegPs,
            Container::Mp3,
            Container::Aac,
            Container::Flac,
            Container::Ogg,
        ]
    }

    fn detect(&self, head: &[u8]) -> bool {
        guess(head).is_some_and(|(name, _)| accepted(&name).is_some())
    }

    fn could_be(&self, _head: &[u8]) -> bool {
        false
    }

    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        let head = src.read_at(0, vod_media::HEAD_LEN)?;
        let (demuxer, container) = guess(&head)
            .and_then(|(name, _)| accepted(&name))
            .ok_or_else(|| ProbeError::UnsupportedFormat("no accepted container signature".into()))?;
        open_and_read(src, demuxer, container)
    }
}

/// Every container libavformat recognises that is not accepted: refused with its name.
pub struct Refused;

impl ContainerFormat for Refused {
    fn containers(&self) -> &'static [Container] {
        &[]
    }

    fn detect(&self, head: &[u8]) -> bool {
        guess(head).is_some_and(|(name, _)| accepted(&name).is_none())
    }

    fn could_be(&self, _head: &[u8]) -> bool {
        false
    }

    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        let head = src.read_at(0, vod_media::HEAD_LEN)?;
        let what = guess(&head).map_or_else(|| "this format".to_string(), |(n, l)| format!("{l} ({n})"));
        Err(ProbeError::UnsupportedFormat(format!(
            "{what} is not an accepted container (accepted: MP4, MOV, M4A, Matroska, WebM, MPEG-TS, MXF, AVI, \
             ASF/WMV, FLV, MPEG-PS, MP3, AAC, FLAC, Ogg, WAV, Y4M)"
        )))
    }
}

/// The custom I/O context's state: the source and the position libavformat reads at.
struct Io<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
    /// The first read error (the budget's timeout included), reported instead of libavformat's generic one.
    error: Option<std::io::Error>,
}

unsafe extern "C" fn read_packet(opaque: *mut c_void, buf: *mut u8, buf_size: c_int) -> c_int {
    // SAFETY: opaque is the `Io` that open_and_read keeps alive for as long as the I/O context exists, and
    // libavformat calls back on the probing thread only; buf holds buf_size writable bytes.
    let io = unsafe { &mut *(opaque as *mut Io) };
    if buf_size <= 0 {
        return 0;
    }
    match io.src.read_at(io.pos, buf_size as usize) {
        Ok(bytes) if bytes.is_empty() => ffi::AVERROR_EOF,
        Ok(bytes) => {
            let n = bytes.len().min(buf_size as usize);
            // SAFETY: n ≤ buf_size bytes into libavformat's buffer, from a distinct Vec.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, n) };
            io.pos += n as u64;
            n as c_int
        }
        Err(e) => {
            io.error.get_or_insert(e);
            ffi::AVERROR(libc::EIO)
        }
    }
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in read_packet.
    let io = unsafe { &mut *(opaque as *mut Io) };
    let size = io.src.size();
    if whence & ffi::AVSEEK_SIZE as c_int != 0 {
        return size.min(i64::MAX as u64) as i64;
    }
    let base = match whence & !(ffi::AVSEEK_FORCE as c_int) {
        libc::SEEK_SET => 0i64,
        libc::SEEK_CUR => io.pos as i64,
        libc::SEEK_END => size as i64,
        _ => return ffi::AVERROR(libc::EINVAL) as i64,
    };
    match base.checked_add(offset) {
        Some(p) if p >= 0 => {
            io.pos = p as u64;
            p
        }
        _ => ffi::AVERROR(libc::EINVAL) as i64,
    }
}

/// Owns what libavformat allocated for one probe and frees it in the right order.
struct Opened {
    ctx: *mut ffi::AVFormatContext,
    avio: *mut ffi::AVIOContext,
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: ctx was opened by avformat_open_input (or is null) and is closed once; with AVFMT_FLAG_CUSTOM_IO
        // closing leaves the I/O context to us, whose buffer libavformat may have reallocated (freed via its field).
        unsafe {
            if !self.ctx.is_null() {
                ffi::avformat_close_input(&mut self.ctx);
            }
            if !self.avio.is_null() {
                ffi::av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut self.avio);
            }
        }
    }
}

/// Opens `src` with `demuxer` alone and reads its streams' parameters.
// Hand-written FFI: ffmpeg-next has no custom I/O context, and the probe must read the upload through ranged reads.
fn open_and_read(src: &dyn ReadAt, demuxer: &str, container: Container) -> Result<MediaInfo, ProbeError> {
    init().map_err(|e| ProbeError::Corrupt(format!("libavformat: {e}")))?;
    let corrupt =
        |what: &str, code: c_int| ProbeError::Corrupt(format!("{demuxer}: {what}: {}", ffmpeg_next::Error::from(code)));
    let name = CString::new(demuxer).map_err(|e| ProbeError::Corrupt(e.to_string()))?;
    let mut io = Io {
        src,
        pos: 0,
        error: None,
    };
    let mut opened = Opened {
        ctx: std::ptr::null_mut(),
        avio: std::ptr::null_mut(),
    };
    // SAFETY: every pointer below is checked before use; `io` outlives `opened` (declared before it, dropped after
    // it); the options dictionary is freed here whatever avformat_open_input left in it.
    unsafe {
        let fmt = ffi::av_find_input_format(name.as_ptr());
        if fmt.is_null() {
            return Err(ProbeError::UnsupportedFormat(format!(
                "no {demuxer} demuxer in this build"
            )));
        }
        let buffer = ffi::av_malloc(IO_BUFFER) as *mut u8;
        if buffer.is_null() {
            return Err(ProbeError::Corrupt("out of memory".into()));
        }
        opened.avio = ffi::avio_alloc_context(
            buffer,
            IO_BUFFER as c_int,
            0,
            &mut io as *mut Io as *mut c_void,
            Some(read_packet),
            None,
            Some(seek),
        );
        if opened.avio.is_null() {
            ffi::av_free(buffer as *mut c_void);
            return Err(ProbeError::Corrupt("out of memory".into()));
        }
        let ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            return Err(ProbeError::Corrupt("out of memory".into()));
        }
        (*ctx).pb = opened.avio;
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as c_int;
        (*ctx).probesize = PROBE_SIZE;
        (*ctx).max_analyze_duration = ANALYZE_DURATION;
        opened.ctx = ctx;
        let mut ctx_ptr = ctx;
        let r = ffi::avformat_open_input(&mut ctx_ptr, std::ptr::null(), fmt, std::ptr::null_mut());
        if r < 0 {
            // avformat_open_input freed the context on failure.
            opened.ctx = std::ptr::null_mut();
            return Err(io
                .error
                .take()
                .map(ProbeError::Io)
                .unwrap_or_else(|| corrupt("cannot open", r)));
        }
        opened.ctx = ctx_ptr;
        let r = ffi::avformat_find_stream_info(ctx_ptr, std::ptr::null_mut());
        if r < 0 {
            return Err(io
                .error
                .take()
                .map(ProbeError::Io)
                .unwrap_or_else(|| corrupt("no stream parameters", r)));
        }
        if let Some(e) = io.error.take() {
            return Err(ProbeError::Io(e));
        }
        let info = read_info(&*ctx_ptr, src.size(), container);
        // A stream whose parameters were not found in what libavformat read: the file ends (or breaks) too early.
        if let Some(a) = info.audio.iter().find(|a| a.channels == 0 || a.sample_rate == 0) {
            return Err(ProbeError::Truncated(format!(
                "the {} audio stream has no channels or sample rate in the file",
                a.codec
            )));
        }
        if let Some(v) = info.video.iter().find(|v| v.width == 0 || v.height == 0) {
            return Err(ProbeError::Truncated(format!(
                "the {} video stream has no picture size in the file",
                v.codec
            )));
        }
        Ok(info)
    }
}

/// The scan libavformat reports, as shown (TB: top coded first, bottom shown first).
fn field_order(f: ffi::AVFieldOrder) -> Option<FieldOrder> {
    match f {
        ffi::AVFieldOrder::AV_FIELD_PROGRESSIVE => Some(FieldOrder::Progressive),
        ffi::AVFieldOrder::AV_FIELD_TT | ffi::AVFieldOrder::AV_FIELD_BT => Some(FieldOrder::Tff),
        ffi::AVFieldOrder::AV_FIELD_BB | ffi::AVFieldOrder::AV_FIELD_TB => Some(FieldOrder::Bff),
        _ => None,
    }
}

fn rational(r: ffi::AVRational) -> f64 {
    if r.den == 0 {
        0.0
    } else {
        r.num as f64 / r.den as f64
    }
}

/// A stream's metadata entry `key` (e.g. `language`), if set.
///
/// # Safety
/// `dict` must be null or a valid dictionary of an opened context.
unsafe fn metadata(dict: *const ffi::AVDictionary, key: &CStr) -> Option<String> {
    // SAFETY: av_dict_get reads a valid (or null) dictionary; the entry and its value live as long as it does.
    let entry = unsafe { ffi::av_dict_get(dict, key.as_ptr(), std::ptr::null(), 0) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: a found entry has a NUL-terminated value.
    let value = unsafe { CStr::from_ptr((*entry).value) };
    Some(value.to_string_lossy().into_owned())
}

/// The media description of an opened context.
///
/// # Safety
/// `ctx` must be an opened format context whose streams' parameters were read.
unsafe fn read_info(ctx: &ffi::AVFormatContext, size: u64, container: Container) -> MediaInfo {
    let secs = |d: i64, tb: f64| {
        if d > 0 && d != ffi::AV_NOPTS_VALUE {
            d as f64 * tb
        } else {
            0.0
        }
    };
    let total = secs(ctx.duration, 1.0 / ffi::AV_TIME_BASE as f64);
    let mut video = Vec::new();
    let mut audio = Vec::new();
    let streams: &[*mut ffi::AVStream] = if ctx.streams.is_null() {
        &[]
    } else {
        // SAFETY: streams holds nb_streams stream pointers.
        unsafe { std::slice::from_raw_parts(ctx.streams, ctx.nb_streams as usize) }
    };
    for &s in streams {
        // SAFETY: each stream and its codec parameters are valid while the context is.
        let (s, par) = unsafe { (&*s, &*(*s).codecpar) };
        let tb = rational(s.time_base);
        let duration = match secs(s.duration, tb) {
            d if d > 0.0 => d,
            _ => total,
        };
        let bitrate = u64::try_from(par.bit_rate).ok().filter(|b| *b > 0);
        // SAFETY: avcodec_get_name returns a static NUL-terminated name for any id.
        let codec = unsafe { CStr::from_ptr(ffi::avcodec_get_name(par.codec_id)) }
            .to_string_lossy()
            .into_owned();
        match par.codec_type {
            ffi::AVMediaType::AVMEDIA_TYPE_VIDEO => {
                // Cover art of an audio file is a picture, not a video stream.
                if s.disposition & ffi::AV_DISPOSITION_ATTACHED_PIC as c_int != 0 {
                    continue;
                }
                let fps = [s.avg_frame_rate, s.r_frame_rate]
                    .into_iter()
                    .map(rational)
                    .find(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
                    .unwrap_or(0.0);
                let sar = par.sample_aspect_ratio;
                video.push(VideoStream {
                    codec,
                    width: par.width.max(0) as u32,
                    height: par.height.max(0) as u32,
                    frame_rate: fps,
                    frame_count: u64::try_from(s.nb_frames).ok().filter(|n| *n > 0),
                    duration_secs: duration,
                    bitrate,
                    rotation: None,
                    pixel_aspect: (sar.num > 0 && sar.den > 0 && sar.num != sar.den)
                        .then_some((sar.num as u32, sar.den as u32)),
                    key_frames_ms: Vec::new(),
                    field_order: field_order(par.field_order),
                });
            }
            ffi::AVMediaType::AVMEDIA_TYPE_AUDIO => audio.push(AudioStream {
                codec,
                channels: par.ch_layout.nb_channels.clamp(0, u16::MAX as c_int) as u16,
                sample_rate: par.sample_rate.max(0) as u32,
                duration_secs: duration,
                bitrate,
                // SAFETY: the stream's metadata is valid while the context is.
                language: unsafe { metadata(s.metadata, c"language") }
                    .as_deref()
                    .and_then(vod_media::language_tag),
                // SAFETY: as above.
                title: unsafe { metadata(s.metadata, c"title") }
                    .as_deref()
                    .and_then(vod_media::track_title),
            }),
            _ => {}
        }
    }
    let duration_secs = if total > 0.0 {
        total
    } else {
        video
            .iter()
            .map(|v| v.duration_secs)
            .chain(audio.iter().map(|a| a.duration_secs))
            .fold(0.0, f64::max)
    };
    MediaInfo {
        container,
        size,
        duration_secs,
        bitrate: vod_media::bitrate(size, duration_secs),
        video,
        audio,
    }
}

#[cfg(test)]
mod tests;
