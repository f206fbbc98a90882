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

impl Picture {
    /// A new YUV420P frame holding the picture (for libavcodec's encoders).
    pub(crate) fn to_frame(&self) -> frame::Video {
        let mut frame = frame::Video::new(Pixel::YUV420P, self.width as u32, self.height as u32);
        for i in 0..3 {
            let (pw, ph) = self.plane_size(i);
            let stride = frame.stride(i);
            let dst = frame.data_mut(i);
            for (row, src) in self.planes[i].chunks_exact(pw).take(ph).enumerate() {
                dst[row * stride..row * stride + pw].copy_from_slice(src);
            }
        }
        frame
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

/// Rotates a picture clockwise by 90, 180 or 270 degrees (any other value: unchanged). Hand-written: swscale
/// does not rotate and the transpose filter would need a libavfilter graph per rung for a few lines of loops.
pub(crate) fn rotate(pic: Picture, degrees: u32) -> Picture {
    if !matches!(degrees, 90 | 180 | 270) {
        return pic;
    }
    let (w, h) = (pic.width, pic.height);
    let (nw, nh) = if degrees == 180 { (w, h) } else { (h, w) };
    let mut planes: [Vec<u8>; 3] = Default::default();
    for (i, out) in planes.iter_mut().enumerate() {
        let (pw, ph) = pic.plane_size(i);
        let src = &pic.planes[i];
        let (ow, oh) = if degrees == 180 { (pw, ph) } else { (ph, pw) };
        out.resize(ow * oh, 0);
        for y in 0..ph {
            for x in 0..pw {
                let (dx, dy) = match degrees {
                    90 => (ph - 1 - y, x),
                    180 => (pw - 1 - x, ph - 1 - y),
                    _ => (y, pw - 1 - x),
                };
                if let (Some(d), Some(s)) = (out.get_mut(dy * ow + dx), src.get(y * pw + x)) {
                    *d = *s;
                }
            }
        }
    }
    Picture {
        width: nw,
        height: nh,
        planes,
    }
}

/// Scales frames of any size and pixel format to `width × height` YUV420P, rotated as displayed.
pub(crate) struct Scaler {
    width: u32,
    height: u32,
    rotation: u32,
    ctx: Option<(Pixel, u32, u32, scaling::Context)>,
}

impl Scaler {
    /// `width × height` is the displayed (rotated) size; frames are scaled to the unrotated size, then rotated.
    pub(crate) fn new(width: u32, height: u32, rotation: u32) -> Self {
        let (width, height) = if matches!(rotation, 90 | 270) {
            (height, width)
        } else {
            (width, height)
        };
        Self {
            width,
            height,
            rotation,
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
        Ok(rotate(picture_from_yuv420p(&out)?, self.rotation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic(w: usize, h: usize) -> Picture {
        let plane = |pw: usize, ph: usize| (0..pw * ph).map(|v| v as u8).collect::<Vec<u8>>();
        Picture {
            width: w,
            height: h,
            planes: [
                plane(w, h),
                plane(w.div_ceil(2), h.div_ceil(2)),
                plane(w.div_ceil(2), h.div_ceil(2)),
            ],
        }
    }

    #[test]
    fn rotates_clockwise() {
        // 4×2 luma: rows [0 1 2 3] [4 5 6 7].
        let p = pic(4, 2);
        let r = rotate(p.clone(), 90);
        assert_eq!((r.width, r.height), (2, 4));
        // Clockwise: the left column, read bottom-up, becomes the top row.
        assert_eq!(r.planes[0], vec![4, 0, 5, 1, 6, 2, 7, 3]);
        assert_eq!(rotate(p.clone(), 180).planes[0], vec![7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(rotate(p.clone(), 270).planes[0], vec![3, 7, 2, 6, 1, 5, 0, 4]);
        assert_eq!(rotate(rotate(p.clone(), 90), 270), p);
        assert_eq!(rotate(p.clone(), 45), p);
        assert_eq!(r.planes[1].len(), 2);
    }
}
