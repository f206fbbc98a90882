//! Thumbnails: the frame shown at each asked time, scaled to a tile and laid out row by row in a sprite sheet, and
//! a poster; JPEG by libavcodec's MJPEG encoder (the sheet converted to full-range 4:2:0 by libswscale).
//!
//! Frames are found the way a player seeking would: the key frame at or before the time, then decoding forward to
//! the last frame presented at or before it; a time close after the previous one decodes on instead of seeking.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, Rational};
use ffmpeg_next as ffmpeg;

use crate::scale::{Picture, Scaler};
use crate::source::{DecodedFrame, VideoSource};
use crate::tonemap::SdrFrames;
use crate::{EncodeError, ThumbnailRequest};

/// A later time within this many seconds of the decoder's position decodes on rather than seeking.
const DECODE_ON_SECS: f64 = 4.0;
/// MJPEG quantiser scale (2 best … 31 worst).
const JPEG_QSCALE: i32 = 4;
/// libavcodec's FF_QP2LAMBDA.
const QP2LAMBDA: i32 = 118;

/// See [`crate::sprite_sheet`].
pub(crate) fn sprite_sheet(req: &ThumbnailRequest) -> Result<Vec<u8>, EncodeError> {
    let (w, h) = req.tile;
    let cells = u64::from(req.columns) * u64::from(req.rows);
    let even = w % 2 == 0 && h % 2 == 0 && (16..=1920).contains(&w) && (16..=1080).contains(&h);
    if !even || req.times.is_empty() || req.times.len() as u64 > cells || cells > 400 {
        return Err(EncodeError::InvalidRequest(
            "a sheet needs even tiles of 16..=1920 × 16..=1080 and 1..=columns×rows (≤ 400) times".into(),
        ));
    }
    if req.times.windows(2).any(|p| p[1] < p[0]) || req.times.iter().any(|t| !t.is_finite() || *t < 0.0) {
        return Err(EncodeError::InvalidRequest(
            "thumbnail times must be finite, ≥ 0 and ascending".into(),
        ));
    }
    let (sw, sh) = ((w * req.columns) as usize, (h * req.rows) as usize);
    let mut sheet = Picture {
        width: sw,
        height: sh,
        depth: 8,
        planes: [vec![16; sw * sh], vec![128; sw * sh / 4], vec![128; sw * sh / 4]],
    };
    let mut source = VideoSource::open(req.source, req.threads)?;
    let mut sdr = SdrFrames::new(&source, req.threads);
    let mut scaler = Scaler::new(w, h, req.rotation);
    let mut picker = Picker::default();
    for (i, t) in req.times.iter().enumerate() {
        let frame = picker.frame_at(&mut source, *t)?;
        let tile = scaler.scale(sdr.frame(i as u64, &frame.frame)?)?;
        let (col, row) = (i % req.columns as usize, i / req.columns as usize);
        blit(&mut sheet, &tile, col * w as usize, row * h as usize);
    }
    jpeg(&sheet)
}

/// See [`crate::poster`].
pub(crate) fn poster(
    source: crate::SourceFile,
    time: f64,
    size: (u32, u32),
    rotation: u32,
) -> Result<Vec<u8>, EncodeError> {
    if size.0 % 2 == 1 || size.1 % 2 == 1 || !(16..=4096).contains(&size.0) || !(16..=4096).contains(&size.1) {
        return Err(EncodeError::InvalidRequest(
            "a poster needs an even size of 16..=4096".into(),
        ));
    }
    let mut source = VideoSource::open(source, 1)?;
    let mut sdr = SdrFrames::new(&source, 1);
    let mut picker = Picker::default();
    let frame = picker.frame_at(&mut source, time.max(0.0))?;
    jpeg(&Scaler::new(size.0, size.1, rotation).scale(sdr.frame(0, &frame.frame)?)?)
}

/// The decoder's position: the last frame decoded at or before the last asked time, and the one after it.
#[derive(Default)]
struct Picker {
    shown: Option<DecodedFrame>,
    next: Option<DecodedFrame>,
}

impl Picker {
    /// The frame presented at `t` seconds (the first frame when `t` comes before it, the last after the end).
    fn frame_at(&mut self, source: &mut VideoSource, t: f64) -> Result<&DecodedFrame, EncodeError> {
        let (num, den) = (f64::from(source.time_base.0), f64::from(source.time_base.1));
        let ts = source.origin.saturating_add((t * den / num).round() as i64);
        // Decode on from where the decoder is when the time is a little ahead of it; otherwise seek.
        let decode_on = match self.shown.as_ref().map(|f| f.pts) {
            Some(p) => p <= ts && (ts - p) as f64 * num / den <= DECODE_ON_SECS,
            None => t <= DECODE_ON_SECS && self.next.is_none(),
        };
        if !decode_on {
            self.reset(source, ts)?;
        }
        loop {
            let f = match self.next.take() {
                Some(f) => f,
                None => match source.next_frame()? {
                    Some(f) => f,
                    None => break,
                },
            };
            if f.pts <= ts || self.shown.is_none() {
                let after = f.pts > ts;
                self.shown = Some(f);
                if after {
                    break;
                }
            } else {
                self.next = Some(f);
                break;
            }
        }
        self.shown
            .as_ref()
            .ok_or_else(|| EncodeError::Decode("no decodable video frame for a thumbnail".into()))
    }

    fn reset(&mut self, source: &mut VideoSource, ts: i64) -> Result<(), EncodeError> {
        self.shown = None;
        self.next = None;
        source.seek(ts)
    }
}

/// Copies `tile` into `sheet` with its top-left corner at (x, y) (even).
fn blit(sheet: &mut Picture, tile: &Picture, x: usize, y: usize) {
    for i in 0..3 {
        let (tw, th) = tile.plane_size(i);
        let (sw, _) = sheet.plane_size(i);
        let (px, py) = if i == 0 { (x, y) } else { (x / 2, y / 2) };
        for row in 0..th {
            let dst = (py + row) * sw + px;
            if let (Some(d), Some(s)) = (
                sheet.planes[i].get_mut(dst..dst + tw),
                tile.planes[i].get(row * tw..(row + 1) * tw),
            ) {
                d.copy_from_slice(s);
            }
        }
    }
}

fn failed(what: &str, e: ffmpeg::Error) -> EncodeError {
    EncodeError::Encode(format!("jpeg {what}: {e}"))
}

/// One JPEG of a (limited-range) 4:2:0 picture.
fn jpeg(pic: &Picture) -> Result<Vec<u8>, EncodeError> {
    crate::source::init()?;
    let (w, h) = (pic.width as u32, pic.height as u32);
    let frame = pic.to_frame();
    // MJPEG takes full-range samples (yuvj420p).
    let mut full = ffmpeg::frame::Video::empty();
    scaling::Context::get(Pixel::YUV420P, w, h, Pixel::YUVJ420P, w, h, scaling::Flags::BICUBIC)
        .and_then(|mut s| s.run(&frame, &mut full))
        .map_err(|e| failed("range conversion", e))?;
    let mjpeg = ffmpeg::encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| EncodeError::InvalidRequest("this FFmpeg has no MJPEG encoder".into()))?;
    let mut ctx = codec::context::Context::new_with_codec(mjpeg);
    ctx.set_flags(codec::Flags::QSCALE);
    let mut enc = ctx.encoder().video().map_err(|e| failed("context", e))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(Rational::new(1, 25));
    enc.set_global_quality(JPEG_QSCALE * QP2LAMBDA);
    let mut enc = enc.open().map_err(|e| failed("open", e))?;
    full.set_pts(Some(0));
    // ffmpeg-next has no setter for a frame's quality, which MJPEG reads in QSCALE mode.
    // SAFETY: `full` is a valid, exclusively owned AVFrame; `quality` is a plain int field.
    unsafe { (*full.as_mut_ptr()).quality = JPEG_QSCALE * QP2LAMBDA };
    enc.send_frame(&full).map_err(|e| failed("send_frame", e))?;
    enc.send_eof().map_err(|e| failed("flush", e))?;
    let mut packet = ffmpeg::Packet::empty();
    enc.receive_packet(&mut packet)
        .map_err(|e| failed("receive_packet", e))?;
    Ok(packet.data().unwrap_or_default().to_vec())
}
