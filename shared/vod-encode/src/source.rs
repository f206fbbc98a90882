//! Demuxing and decoding of the source's video stream with libavformat/libavcodec (FFmpeg).
//!
//! [`VideoSource::open`] finds the best video stream and opens its decoder (frame-threaded; libavcodec
//! decoding is bit-exact whatever the thread count); [`VideoSource::seek`] moves to the key frame at or
//! before a presentation time; [`VideoSource::next_frame`] yields frames in presentation order with their
//! timestamp. Corrupt packets are skipped; a stream that yields no frame at all is an error.

use std::path::Path;

use ffmpeg::{codec, format, frame, media, Packet};
use ffmpeg_next as ffmpeg;

use crate::EncodeError;

/// How many read or decode errors in a row end decoding with [`EncodeError::Decode`].
const MAX_CONSECUTIVE_ERRORS: u32 = 64;

/// Initialises FFmpeg once per process and keeps its logging quiet.
pub(crate) fn init() -> Result<(), EncodeError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
        Ok(())
    })
    .clone()
    .map_err(EncodeError::Open)
}

/// What the probe accepted, and so all the encoder opens: the libavformat demuxer the source is read with (no format
/// detection, no protocol but local files) and the codec of its video and audio streams. A file that probed as one
/// thing is never decoded as another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFormat {
    /// libavformat demuxer name: `mov` (MP4, MOV), `matroska` (Matroska, WebM), `yuv4mpegpipe`, `wav`.
    pub demuxer: String,
    /// The video streams' codecs as the probe named them (ffmpeg's codec names: `h264`, `hevc`, `prores`, …).
    pub video_codecs: Vec<String>,
    /// The audio streams' codecs as the probe named them.
    pub audio_codecs: Vec<String>,
}

/// A local source file and the format the probe accepted for it.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile<'a> {
    pub path: &'a Path,
    pub format: &'a InputFormat,
}

/// Opens a source with libavformat: its probed demuxer forced, local files only.
pub(crate) fn open_input(source: SourceFile) -> Result<format::context::Input, EncodeError> {
    init()?;
    let path = source.path;
    if !path.is_file() {
        return Err(EncodeError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a readable file", path.display()),
        )));
    }
    let open_err = |m: String| EncodeError::Open(format!("{}: {m}", path.display()));
    let name = std::ffi::CString::new(source.format.demuxer.as_str()).map_err(|e| open_err(e.to_string()))?;
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| open_err(e.to_string()))?;
    let mut options = ffmpeg::Dictionary::new();
    options.set("protocol_whitelist", "file");
    // SAFETY: av_find_input_format reads a NUL-terminated name and returns a static demuxer or null;
    // avformat_open_input gets a null context pointer to fill, a NUL-terminated path, that demuxer and an owned
    // dictionary (given back and freed by Dictionary::own); on failure it frees the context itself, and after a
    // failed avformat_find_stream_info we close it; on success Input::wrap takes ownership.
    unsafe {
        let demuxer = ffmpeg::ffi::av_find_input_format(name.as_ptr());
        if demuxer.is_null() {
            return Err(open_err(format!("no demuxer {}", source.format.demuxer)));
        }
        let mut ctx = std::ptr::null_mut();
        let mut opts = options.disown();
        let r = ffmpeg::ffi::avformat_open_input(&mut ctx, c_path.as_ptr(), demuxer, &mut opts);
        ffmpeg::Dictionary::own(opts);
        if r < 0 {
            return Err(open_err(ffmpeg::Error::from(r).to_string()));
        }
        let r = ffmpeg::ffi::avformat_find_stream_info(ctx, std::ptr::null_mut());
        if r < 0 {
            ffmpeg::ffi::avformat_close_input(&mut ctx);
            return Err(open_err(ffmpeg::Error::from(r).to_string()));
        }
        Ok(format::context::Input::wrap(ctx))
    }
}

/// Checks that the stream libavformat found has the codec the probe accepted.
pub(crate) fn check_codec(kind: &str, found: codec::Id, accepted: &[String]) -> Result<(), EncodeError> {
    let found_name = found.name();
    if accepted.iter().any(|a| a.eq_ignore_ascii_case(found_name)) {
        return Ok(());
    }
    Err(EncodeError::NotAccepted(format!(
        "its {kind} stream is {found_name}, but the probe accepted {}",
        if accepted.is_empty() {
            "none".to_string()
        } else {
            accepted.join(", ")
        }
    )))
}

/// A decoded video frame and its source timestamp.
pub(crate) struct DecodedFrame {
    pub(crate) pts: i64,
    pub(crate) frame: frame::Video,
}

/// The video stream of a source, being decoded.
pub(crate) struct VideoSource {
    input: format::context::Input,
    stream_index: usize,
    decoder: codec::decoder::Video,
    /// Stream time base as (num, den), both > 0.
    pub(crate) time_base: (i32, i32),
    /// Timestamp (in the stream time base) of presentation time zero: the stream's start time.
    pub(crate) origin: i64,
    eof_sent: bool,
    finished: bool,
    last_pts: Option<i64>,
    frames_out: u64,
    /// Packets presented before this timestamp are never shown: their non-reference frames are not decoded.
    unshown_before: Option<i64>,
    skipping: bool,
    /// Interlaced frames come out progressive (motion-adaptive, the first field kept).
    deinterlacer: crate::deinterlace::Deinterlacer,
}

impl VideoSource {
    /// Opens `source` and the decoder of its best video stream (the codec the probe accepted).
    pub(crate) fn open(source: SourceFile, threads: usize) -> Result<Self, EncodeError> {
        let input = open_input(source)?;
        let stream = input.streams().best(media::Type::Video).ok_or(EncodeError::NoVideo)?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.numerator() > 0 && tb.denominator() > 0 {
            (tb.numerator(), tb.denominator())
        } else {
            (1, 90_000)
        };
        let origin = match stream.start_time() {
            t if t == ffmpeg::ffi::AV_NOPTS_VALUE => 0,
            t => t,
        };
        let codec_id = stream.parameters().id();
        check_codec("video", codec_id, &source.format.video_codecs)?;
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| EncodeError::Decode(format!("decoder parameters: {e}")))?;
        if codec::decoder::find(codec_id).is_none() {
            return Err(EncodeError::UnsupportedCodec(format!("{codec_id:?}")));
        }
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: threads.clamp(1, 16),
            ..Default::default()
        });
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| EncodeError::UnsupportedCodec(format!("{codec_id:?}: {e}")))?;
        Ok(Self {
            input,
            stream_index,
            decoder,
            time_base,
            origin,
            eof_sent: false,
            finished: false,
            last_pts: None,
            frames_out: 0,
            unshown_before: None,
            skipping: false,
            deinterlacer: Default::default(),
        })
    }

    /// The source's bits per sample (luma) and, for sources of more than 8 bits, its colour description (ITU-T
    /// H.273 code points) as the stream declares it: what a 10-bit AV1 rendition carries on. The same in every
    /// chunk (it comes from the stream's parameters, not from frames).
    pub(crate) fn colour(&self) -> (u8, Option<vod_cmaf::Colour>) {
        let depth = self
            .decoder
            .format()
            .descriptor()
            // SAFETY: a descriptor points at libavutil's static table entry, which has at least one component.
            .map(|d| unsafe { (*d.as_ptr()).comp[0].depth })
            .and_then(|d| u8::try_from(d).ok())
            .unwrap_or(8);
        if depth <= 8 {
            return (8, None);
        }
        // SAFETY: the decoder's context is valid while it is; these fields are plain enums.
        let ctx = unsafe { &*self.decoder.as_ptr() };
        let code = |v: i64| u8::try_from(v).ok().filter(|v| *v != 2); // 2: unspecified
        let colour = match (
            code(ctx.color_primaries as i64),
            code(ctx.color_trc as i64),
            code(ctx.colorspace as i64),
        ) {
            (Some(primaries), Some(transfer), Some(matrix)) => Some(vod_cmaf::Colour {
                primaries,
                transfer,
                matrix,
                full_range: ctx.color_range == ffmpeg::ffi::AVColorRange::AVCOL_RANGE_JPEG,
                mastering: None,
                light: None,
            }),
            _ => None,
        };
        (10, colour)
    }

    /// Seeks to the key frame at or before `ts` (in the stream time base) and resets the decoder.
    pub(crate) fn seek(&mut self, ts: i64) -> Result<(), EncodeError> {
        let (num, den) = (i128::from(self.time_base.0), i128::from(self.time_base.1));
        let micros = i128::from(ts).saturating_mul(num).saturating_mul(1_000_000) / den;
        let micros = i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX });
        // `..micros` is passed to avformat_seek_file as max_ts = micros: the key frame at or before it.
        self.input
            .seek(micros, ..micros)
            .map_err(|e| EncodeError::Decode(format!("seek: {e}")))?;
        self.decoder.flush();
        self.eof_sent = false;
        self.finished = false;
        self.last_pts = None;
        self.deinterlacer = Default::default();
        Ok(())
    }

    /// Frames presented before `ts` (stream time base) will be dropped by the caller: from now on, packets
    /// before it that no other frame references are not decoded at all (libavcodec's `skip_frame`), which
    /// cuts the cost of decoding from a key frame well before a chunk's start.
    pub(crate) fn skip_unshown_before(&mut self, ts: i64) {
        self.unshown_before = Some(ts);
    }

    /// Total frames decoded so far.
    pub(crate) fn frames_decoded(&self) -> u64 {
        self.frames_out
    }

    /// Next frame in presentation order, `None` at the end of the stream.
    pub(crate) fn next_frame(&mut self) -> Result<Option<DecodedFrame>, EncodeError> {
        let mut errors = 0u32;
        loop {
            if self.finished {
                return Ok(None);
            }
            let mut frame = frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let pts = frame
                        .timestamp()
                        .or(frame.pts())
                        .or_else(|| self.last_pts.map(|p| p.saturating_add(1)))
                        .unwrap_or(self.origin);
                    self.last_pts = Some(pts);
                    self.frames_out += 1;
                    let frame = self.deinterlacer.process(frame)?;
                    return Ok(Some(DecodedFrame { pts, frame }));
                }
                Err(ffmpeg::Error::Eof) => {
                    self.finished = true;
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => {
                    errors += 1;
                    tracing::debug!(error = %e, "video decode error");
                    if errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(EncodeError::Decode(e.to_string()));
                    }
                    continue;
                }
            }
            if self.eof_sent {
                // Draining after EOF and the decoder wants input: nothing more will come.
                self.finished = true;
                return Ok(None);
            }
            self.feed(&mut errors)?;
        }
    }

    /// Reads packets until one of the video stream is sent to the decoder (or EOF is signalled).
    fn feed(&mut self, errors: &mut u32) -> Result<(), EncodeError> {
        loop {
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => {
                    self.eof_sent = true;
                    // Sending EOF twice or to a failed decoder is harmless: draining follows.
                    let _ = self.decoder.send_eof();
                    return Ok(());
                }
                Err(e) => {
                    *errors += 1;
                    if *errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(EncodeError::Decode(format!("read: {e}")));
                    }
                    continue;
                }
            }
            if packet.stream() != self.stream_index {
                continue;
            }
            let skip = matches!((packet.pts(), self.unshown_before), (Some(p), Some(limit)) if p < limit);
            if skip != self.skipping {
                self.skipping = skip;
                let discard = if skip {
                    ffmpeg::Discard::NonReference
                } else {
                    ffmpeg::Discard::Default
                };
                self.decoder.skip_frame(discard);
            }
            match self.decoder.send_packet(&packet) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *errors += 1;
                    tracing::debug!(error = %e, "video packet rejected");
                    if *errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(EncodeError::Decode(e.to_string()));
                    }
                }
            }
        }
    }
}

/// HDR10 static metadata a decoded frame carries (from the source's SEI or container): the mastering display
/// (`AVMasteringDisplayMetadata`, read by its C layout: libavutil's headers for it are not in ffmpeg-sys's
/// bindings) and the content light levels (`AVContentLightMetadata`), in `mdcv`/`clli` units.
pub(crate) fn hdr_metadata(f: &frame::Video) -> (Option<vod_cmaf::MasteringDisplay>, Option<vod_cmaf::ContentLight>) {
    use ffmpeg::util::frame::side_data::Type;
    let int = |b: &[u8], i: usize| -> Option<i64> {
        let s = b.get(4 * i..4 * i + 4)?;
        Some(i64::from(i32::from_ne_bytes([s[0], s[1], s[2], s[3]])))
    };
    // A rational (num, den at ints `i`, `i + 1`) in units of 1/`scale`, if it fits.
    let rational = |b: &[u8], i: usize, scale: i64, max: i64| -> Option<i64> {
        let (num, den) = (int(b, i)?, int(b, i + 1)?);
        (den > 0 && num >= 0).then(|| num * scale / den).filter(|v| *v <= max)
    };
    let mastering = f.side_data(Type::MasteringDisplayMetadata).and_then(|sd| {
        let b = sd.data();
        // 3 primaries and the white point as (x, y) rationals, min and max luminance, has_primaries, has_luminance.
        if b.len() < 88 || int(b, 20)? == 0 || int(b, 21)? == 0 {
            return None;
        }
        let xy = |k: usize| -> Option<(u16, u16)> {
            let x = rational(b, 4 * k, 50_000, 50_000)?;
            let y = rational(b, 4 * k + 2, 50_000, 50_000)?;
            Some((u16::try_from(x).ok()?, u16::try_from(y).ok()?))
        };
        Some(vod_cmaf::MasteringDisplay {
            primaries: [xy(0)?, xy(1)?, xy(2)?],
            white_point: xy(3)?,
            min_luminance: u32::try_from(rational(b, 16, 10_000, i64::from(u32::MAX))?).ok()?,
            max_luminance: u32::try_from(rational(b, 18, 10_000, i64::from(u32::MAX))?).ok()?,
        })
    });
    let light = f.side_data(Type::ContentLightLevel).and_then(|sd| {
        let b = sd.data();
        let level = |i: usize| u16::try_from(int(b, i)?).ok();
        Some(vod_cmaf::ContentLight {
            max_cll: level(0)?,
            max_fall: level(1)?,
        })
    });
    (mastering, light)
}
