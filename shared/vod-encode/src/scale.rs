//! Scaling of decoded frames to a rung's size as 4:2:0 with libswscale (bicubic): 8-bit, or 10-bit for AV1 rungs
//! of sources with more than 8 bits.
//!
//! A [`Scaler`] rebuilds its swscale context when the source's size or pixel format changes mid-stream.
//! Output is a tightly packed [`Picture`] (stride = plane width), ready to copy into the encoder.

use ffmpeg::{format::Pixel, frame, software::scaling};
use ffmpeg_next as ffmpeg;

use crate::EncodeError;

/// A tightly packed YUV 4:2:0 picture, 8-bit or 10-bit (samples as little-endian u16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Picture {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Bits per sample: 8 or 10.
    pub(crate) depth: u8,
    /// Y, U, V planes, each `plane_width × plane_height` samples of `bytes_per_sample` bytes.
    pub(crate) planes: [Vec<u8>; 3],
}

impl Picture {
    /// Bytes of one sample: 1 for 8 bits, 2 for 10.
    pub(crate) fn bytes_per_sample(&self) -> usize {
        if self.depth > 8 {
            2
        } else {
            1
        }
    }

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
    /// A new YUV420P frame holding the (8-bit) picture (for libavcodec's encoders).
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

/// Copies a YUV420P or YUV420P10LE frame into a tight [`Picture`].
pub(crate) fn picture_from_frame(f: &frame::Video) -> Result<Picture, EncodeError> {
    let (depth, bytes) = match f.format() {
        Pixel::YUV420P => (8, 1),
        Pixel::YUV420P10LE => (10, 2),
        other => {
            return Err(EncodeError::Encode(format!(
                "expected yuv420p or yuv420p10le, got {other:?}"
            )))
        }
    };
    if f.planes() < 3 {
        return Err(EncodeError::Encode("a 4:2:0 frame without three planes".into()));
    }
    let (w, h) = (f.width() as usize, f.height() as usize);
    let mut planes: [Vec<u8>; 3] = Default::default();
    for (i, plane) in planes.iter_mut().enumerate() {
        let (pw, ph) = if i == 0 { (w, h) } else { (w.div_ceil(2), h.div_ceil(2)) };
        let row_bytes = pw * bytes;
        let stride = f.stride(i);
        let data = f.data(i);
        if stride < row_bytes || data.len() < stride * ph {
            return Err(EncodeError::Encode("frame plane smaller than its size".into()));
        }
        plane.reserve_exact(row_bytes * ph);
        for row in data.chunks(stride).take(ph) {
            plane.extend_from_slice(row.get(..row_bytes).unwrap_or(row));
        }
    }
    Ok(Picture {
        width: w,
        height: h,
        depth,
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
    let b = pic.bytes_per_sample();
    let mut planes: [Vec<u8>; 3] = Default::default();
    for (i, out) in planes.iter_mut().enumerate() {
        let (pw, ph) = pic.plane_size(i);
        let src = &pic.planes[i];
        let (ow, oh) = if degrees == 180 { (pw, ph) } else { (ph, pw) };
        out.resize(ow * oh * b, 0);
        for y in 0..ph {
            for x in 0..pw {
                let (dx, dy) = match degrees {
                    90 => (ph - 1 - y, x),
                    180 => (pw - 1 - x, ph - 1 - y),
                    _ => (y, pw - 1 - x),
                };
                let (d, s) = ((dy * ow + dx) * b, (y * pw + x) * b);
                if let (Some(d), Some(s)) = (out.get_mut(d..d + b), src.get(s..s + b)) {
                    d.copy_from_slice(s);
                }
            }
        }
    }
    Picture {
        width: nw,
        height: nh,
        depth: pic.depth,
        planes,
    }
}

/// Scales frames of any size and pixel format to `width × height` YUV420P (or YUV420P10LE), rotated as displayed.
pub(crate) struct Scaler {
    width: u32,
    height: u32,
    rotation: u32,
    format: Pixel,
    ctx: Option<(Pixel, u32, u32, scaling::Context)>,
}

impl Scaler {
    /// `width × height` is the displayed (rotated) size; frames are scaled to the unrotated size, then rotated.
    pub(crate) fn new(width: u32, height: u32, rotation: u32) -> Self {
        Self::with_depth(width, height, rotation, 8)
    }

    /// A scaler to 8-bit or (`depth` > 8) 10-bit pictures.
    pub(crate) fn with_depth(width: u32, height: u32, rotation: u32, depth: u8) -> Self {
        let (width, height) = if matches!(rotation, 90 | 270) {
            (height, width)
        } else {
            (width, height)
        };
        Self {
            width,
            height,
            rotation,
            format: if depth > 8 { Pixel::YUV420P10LE } else { Pixel::YUV420P },
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
                self.format,
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
        Ok(rotate(picture_from_frame(&out)?, self.rotation))
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
            depth: 8,
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
        // 10-bit: samples of two bytes move whole.
        let wide = Picture {
            depth: 10,
            planes: p
                .planes
                .clone()
                .map(|plane| plane.iter().flat_map(|v| [*v, 0x03]).collect()),
            ..p.clone()
        };
        let r10 = rotate(wide, 90);
        assert_eq!(r10.planes[0], vec![4, 3, 0, 3, 5, 3, 1, 3, 6, 3, 2, 3, 7, 3, 3, 3]);
    }
}
