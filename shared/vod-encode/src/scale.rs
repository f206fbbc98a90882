//! Scaling of decoded frames to a rung's size as 8-bit 4:2:0 with libswscale (bicubic).
//!
//! A [`Scaler`] rebuilds its swscale context when the source's size or pixel format changes mid-stream.
//! Output is a tightly packed [`Picture`] (stride = plane width), ready to copy into the encoder.

use ffmpeg::{format::Pixel, frame, software::scaling};
use ffmpeg_next as ffmpeg;

use crate::EncodeError;

/// A tightly packed 8-bit YUV 4:2:0 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Picture {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Y, U, V planes, each `plane_width × plane_height` bytes.
    pub(crate) planes: [Vec<u8>; 3],
}

impl Picture {
    /// Width and height of plane `i`.
    pub(crate) fn plane_size(&self, i: usize) -> (usize, usize) {
        if i == 0 {
            (self.width, self.height)
        } else {
            (self.width.div_ceil(2), self.height.div_ceil(2))
        }
    }
}

/// Copies a YUV420P frame into a tight [`Picture`].
pub(crate) fn picture_from_yuv420p(f: &frame::Video) -> Result<Picture, EncodeError> {
    if f.format() != Pixel::YUV420P || f.planes() < 3 {
        return Err(EncodeError::Encode(format!("expected yuv420p, got {:?}", f.format())));
    }
    let (w, h) = (f.width() as usize, f.height() as usize);
    let mut planes: [Vec<u8>; 3] = Default::default();
    for (i, plane) in planes.iter_mut().enumerate() {
        let (pw, ph) = if i == 0 { (w, h) } else { (w.div_ceil(2), h.div_ceil(2)) };
        let stride = f.stride(i);
        let data = f.data(i);
        if stride < pw || data.len() < stride * ph {
            return Err(EncodeError::Encode("frame plane smaller than its size".into()));
        }
        plane.reserve_exact(pw * ph);
        for row in data.chunks(stride).take(ph) {
            plane.extend_from_slice(row.get(..pw).unwrap_or(row));
        }
    }
    Ok(Picture {
        width: w,
        height: h,
        planes,
    })
}

/// Scales frames of any size and pixel format to `width × height` YUV420P.
pub(crate) struct Scaler {
    width: u32,
    height: u32,
    ctx: Option<(Pixel, u32, u32, scaling::Context)>,
}

impl Scaler {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            ctx: None,
        }
    }

    /// Scales one decoded frame.
    pub(crate) fn scale(&mut self, src: &frame::Video) -> Result<Picture, EncodeError> {
        let (fmt, w, h) = (src.format(), src.width(), src.height());
        if w == 0 || h == 0 || fmt == Pixel::None {
            return Err(EncodeError::Decode("decoded frame has no picture".into()));
        }
        let stale = !matches!(&self.ctx, Some((f, cw, ch, _)) if *f == fmt && *cw == w && *ch == h);
        if stale {
            let ctx = scaling::Context::get(
                fmt,
                w,
                h,
                Pixel::YUV420P,
                self.width,
                self.height,
                scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND,
            )
            .map_err(|e| EncodeError::UnsupportedCodec(format!("cannot scale from {fmt:?} {w}x{h}: {e}")))?;
            self.ctx = Some((fmt, w, h, ctx));
        }
        let Some((_, _, _, ctx)) = self.ctx.as_mut() else {
            return Err(EncodeError::Encode("scaler missing".into()));
        };
        let mut out = frame::Video::empty();
        ctx.run(src, &mut out)
            .map_err(|e| EncodeError::Encode(format!("scale: {e}")))?;
        picture_from_yuv420p(&out)
    }
}
