//! YUV4MPEG2 (.y4m) probing: header via the `y4m` crate, frame count from the file size.

use std::io::Cursor;

use y4m::Colorspace;

use crate::probe::{bitrate, Container, MediaInfo, ProbeError, VideoStream};
use crate::source::ReadAt;

/// The y4m crate's own header limit.
const MAX_HEADER: usize = 1024;
/// Largest frame we accept (8K 4:4:4 at 16 bits is ~200 MB).
const MAX_FRAME_BYTES: usize = 256 << 20;
/// Largest width or height accepted before handing the header to the y4m crate
/// (its plane-size arithmetic is unchecked).
const MAX_DIMENSION: u64 = 1 << 16;

const Y4M_MAGIC: &[u8] = b"YUV4MPEG2 ";

/// YUV4MPEG2: raw frames after a text header (read whole: frames are not indexed).
pub(crate) struct Y4mFormat;

impl crate::format::ContainerFormat for Y4mFormat {
    fn containers(&self) -> &'static [Container] {
        &[Container::Y4m]
    }
    fn detect(&self, head: &[u8]) -> bool {
        head.starts_with(Y4M_MAGIC)
    }
    fn could_be(&self, head: &[u8]) -> bool {
        crate::format::starts_like(head, Y4M_MAGIC)
    }
    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        probe(src)
    }
}

pub(crate) fn probe(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    let size = src.size();
    let head = src.read_at(0, MAX_HEADER)?;
    let Some(nl) = head.iter().position(|&b| b == b'\n') else {
        return Err(if (head.len() as u64) == size {
            ProbeError::Truncated("y4m header has no end".into())
        } else {
            ProbeError::Corrupt("y4m header longer than 1024 bytes".into())
        });
    };
    let header = &head[..=nl];
    check_dimensions(header)?;
    let dec = y4m::Decoder::new_with_limits(Cursor::new(header), y4m::Limits { bytes: MAX_FRAME_BYTES }).map_err(
        |e| match e {
            y4m::Error::UnknownColorspace => ProbeError::UnsupportedFormat("y4m colorspace".into()),
            y4m::Error::OutOfMemory => ProbeError::Corrupt("y4m frame size too large".into()),
            other => ProbeError::Corrupt(format!("y4m header: {other:?}")),
        },
    )?;
    let (width, height) = (dec.get_width(), dec.get_height());
    let frame_bytes = frame_bytes(width, height, dec.get_colorspace())
        .ok_or_else(|| ProbeError::Corrupt("y4m frame size overflows".into()))?;
    let rate = dec.get_framerate();
    if rate.num == 0 || rate.den == 0 {
        return Err(ProbeError::Corrupt(format!("y4m frame rate {}:{}", rate.num, rate.den)));
    }
    let frame_rate = rate.num as f64 / rate.den as f64;

    let data_start = nl as u64 + 1;
    let data_len = size - data_start;
    let (frame_count, frame_header) = if data_len == 0 {
        (0, 6)
    } else {
        // Each frame is "FRAME[ params]\n" + planes; use the first frame's header length.
        let first = src.read_at(data_start, 256)?;
        if !first.starts_with(b"FRAME") {
            return Err(if first.len() < 5 && b"FRAME".starts_with(&first) {
                ProbeError::Truncated("y4m frame header cut".into())
            } else {
                ProbeError::Corrupt("y4m data does not start with FRAME".into())
            });
        }
        let Some(fh) = first.iter().position(|&b| b == b'\n') else {
            return Err(ProbeError::Truncated("y4m frame header cut".into()));
        };
        let per_frame = (fh as u64 + 1) + frame_bytes;
        if data_len % per_frame != 0 {
            return Err(ProbeError::Truncated(format!(
                "y4m data of {data_len} bytes is not a whole number of {per_frame}-byte frames"
            )));
        }
        (data_len / per_frame, fh as u64 + 1)
    };
    if frame_count > 1 {
        // The last frame must start with a frame header too.
        let last = data_start + (frame_count - 1) * (frame_header + frame_bytes);
        if src.read_at(last, 5)? != b"FRAME" {
            return Err(ProbeError::Corrupt("y4m frames have varying headers".into()));
        }
    }
    let duration_secs = frame_count as f64 / frame_rate;
    let to_u32 = |v: usize| u32::try_from(v).map_err(|_| ProbeError::Corrupt("y4m dimension".into()));
    Ok(MediaInfo {
        container: Container::Y4m,
        size,
        duration_secs,
        bitrate: bitrate(size, duration_secs),
        video: vec![VideoStream {
            codec: "rawvideo".into(),
            width: to_u32(width)?,
            height: to_u32(height)?,
            frame_rate,
            frame_count: Some(frame_count),
            duration_secs,
            bitrate: bitrate(data_len, duration_secs),
            rotation: None,
            pixel_aspect: None,
            key_frames_ms: Vec::new(),
            field_order: None,
        }],
        audio: Vec::new(),
    })
}

/// Rejects absurd W/H values before the y4m crate multiplies them.
fn check_dimensions(header: &[u8]) -> Result<(), ProbeError> {
    for param in header.split(|&b| b == b' ' || b == b'\n') {
        if let [b'W' | b'H', value @ ..] = param {
            let ok = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v > 0 && v <= MAX_DIMENSION);
            if !ok {
                return Err(ProbeError::Corrupt("y4m width/height out of range".into()));
            }
        }
    }
    Ok(())
}

/// Bytes of one frame's planes, as ffmpeg writes them (chroma sizes rounded up).
fn frame_bytes(width: usize, height: usize, cs: Colorspace) -> Option<u64> {
    let (w, h) = (width as u64, height as u64);
    let luma = w.checked_mul(h)?;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let chroma = match cs {
        Colorspace::Cmono | Colorspace::Cmono12 => 0,
        Colorspace::C422 | Colorspace::C422p10 | Colorspace::C422p12 => cw.checked_mul(h)?.checked_mul(2)?,
        Colorspace::C444 | Colorspace::C444p10 | Colorspace::C444p12 => luma.checked_mul(2)?,
        // 4:2:0 in all its siting variants (and anything newer defaults to it).
        _ => cw.checked_mul(ch)?.checked_mul(2)?,
    };
    luma.checked_add(chroma)?.checked_mul(cs.get_bytes_per_sample() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        assert_eq!(frame_bytes(320, 240, Colorspace::C420), Some(320 * 240 * 3 / 2));
        assert_eq!(frame_bytes(321, 241, Colorspace::C420), Some(321 * 241 + 161 * 121 * 2));
        assert_eq!(frame_bytes(4, 4, Colorspace::C444p10), Some(4 * 4 * 3 * 2));
    }

    #[test]
    fn absurd_dimensions_rejected() {
        let f = b"YUV4MPEG2 W99999999999999999999 H9999999999 F25:1\nFRAME\n".to_vec();
        assert!(matches!(crate::probe(&f), Err(ProbeError::Corrupt(_))));
        let f = b"YUV4MPEG2 W2 H2 F25:0\nFRAME\n".to_vec();
        assert!(matches!(crate::probe(&f), Err(ProbeError::Corrupt(_))));
    }
}
