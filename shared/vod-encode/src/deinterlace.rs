//! Deinterlacing of the frames a decoder flags interlaced, before they are scaled: one progressive frame per
//! interlaced frame (1080i50 → 25p), keeping the field shown first (the frame's own field order) and rebuilding
//! the other field motion-adaptively — where it moved since the previous frame (or combs against the kept field),
//! from the kept field's lines along the best-matching edge direction; where it stood still, its own woven lines, so
//! static detail keeps full vertical resolution.
//!
//! Planar YUV of 8 bits, and of 9 to 16 bits little-endian, in every chroma layout; each plane on its own (the
//! chroma rows of interlaced 4:2:0 alternate fields like the luma rows).
// Hand-written: libavfilter (yadif, bwdif) is not in the media layer (its dependencies would not fit Lambda's 250 MiB
// with the encoder's), and no maintained Rust crate deinterlaces video.
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use crate::EncodeError;

/// Difference (in 8-bit steps) above which a pixel has moved, or combs against the kept field.
const THRESHOLD_8BIT: i32 = 10;

/// The deinterlacer of one decoding pass: it keeps the previous frame for motion detection.
#[derive(Default)]
pub(crate) struct Deinterlacer {
    prev: Option<frame::Video>,
}

/// Bytes per sample and bit depth of the planar formats deinterlaced, `None` for others.
fn layout(format: Pixel) -> Option<(usize, u32)> {
    use Pixel::*;
    match format {
        YUV420P | YUVJ420P | YUV422P | YUVJ422P | YUV444P | YUVJ444P | YUV411P | YUV440P | YUVJ440P | GRAY8 => {
            Some((1, 8))
        }
        YUV420P10LE | YUV422P10LE | YUV444P10LE => Some((2, 10)),
        YUV420P12LE | YUV422P12LE | YUV444P12LE => Some((2, 12)),
        _ => Option::None,
    }
}

impl Deinterlacer {
    /// `frame` made progressive if the decoder flagged it interlaced (and its format is planar YUV), else as it is.
    pub(crate) fn process(&mut self, frame: frame::Video) -> Result<frame::Video, EncodeError> {
        let Some((bytes, depth)) = layout(frame.format()) else {
            return Ok(frame);
        };
        if !frame.is_interlaced() {
            self.prev = None;
            return Ok(frame);
        }
        let prev = self
            .prev
            .as_ref()
            .filter(|p| p.format() == frame.format() && p.width() == frame.width() && p.height() == frame.height());
        let mut out = frame.clone();
        let top_first = frame.is_top_first();
        let threshold = THRESHOLD_8BIT << (depth - 8);
        for plane in 0..frame.planes() {
            let (w, h) = (frame.plane_width(plane) as usize, frame.plane_height(plane) as usize);
            let geometry = Plane {
                width: w,
                height: h,
                bytes,
            };
            let fits = |data: &[u8], stride: usize| stride >= w * bytes && data.len() >= stride * h;
            let cur = (frame.data(plane), frame.stride(plane));
            let out_stride = out.stride(plane);
            if !fits(cur.0, cur.1) || !fits(out.data(plane), out_stride) {
                return Err(EncodeError::Decode("a frame plane is smaller than its size".into()));
            }
            let prev_plane = prev
                .map(|p| (p.data(plane), p.stride(plane)))
                .filter(|(d, s)| fits(d, *s));
            rebuild_field(
                &geometry,
                cur,
                prev_plane,
                (out.data_mut(plane), out_stride),
                top_first,
                threshold,
            );
        }
        // SAFETY: out is a valid frame this function owns; only its interlacing flags change.
        unsafe {
            (*out.as_mut_ptr()).interlaced_frame = 0;
        }
        self.prev = Some(frame);
        Ok(out)
    }
}

/// A plane's geometry: samples per row and rows, bytes per sample (1, or 2 little-endian).
struct Plane {
    width: usize,
    height: usize,
    bytes: usize,
}

/// A plane's bytes and the bytes between its rows.
type Rows<'a> = (&'a [u8], usize);

impl Plane {
    fn get(&self, (data, stride): Rows, x: usize, y: usize) -> i32 {
        let at = y * stride + x * self.bytes;
        if self.bytes == 1 {
            i32::from(data[at])
        } else {
            i32::from(u16::from_le_bytes([data[at], data[at + 1]]))
        }
    }

    fn set(&self, data: &mut [u8], stride: usize, x: usize, y: usize, v: i32) {
        let at = y * stride + x * self.bytes;
        if self.bytes == 1 {
            data[at] = v.clamp(0, 255) as u8;
        } else {
            data[at..at + 2].copy_from_slice(&(v.clamp(0, 65535) as u16).to_le_bytes());
        }
    }
}

/// Rewrites, in `out` (a copy of `cur`), the rows of the field shown second where they moved or comb.
fn rebuild_field(
    p: &Plane,
    cur: Rows,
    prev: Option<Rows>,
    (out, out_stride): (&mut [u8], usize),
    top_first: bool,
    threshold: i32,
) {
    // Rows of the rebuilt field: odd rows when the top field is shown first.
    let first = if top_first { 1 } else { 0 };
    for y in (first..p.height).step_by(2) {
        // Its neighbours in the kept field (mirrored at the edges).
        let above = if y == 0 { 1.min(p.height - 1) } else { y - 1 };
        let below = if y + 1 >= p.height { above } else { y + 1 };
        for x in 0..p.width {
            let a = p.get(cur, x, above);
            let c = p.get(cur, x, below);
            let b = p.get(cur, x, y);
            // Combing: the woven sample lies outside what its kept-field neighbours span, by more than the
            // threshold.
            let combs = b < a.min(c) - threshold || b > a.max(c) + threshold;
            let rebuild = match prev {
                // Motion: this sample, or its kept-field neighbours, changed since the previous frame.
                Some(prev) => {
                    let here = (b - p.get(prev, x, y)).abs();
                    let around = ((a - p.get(prev, x, above)).abs() + (c - p.get(prev, x, below)).abs()) / 2;
                    here.max(around) > threshold
                }
                // No previous frame (the first after a seek): where it combs.
                None => combs,
            };
            if rebuild {
                p.set(out, out_stride, x, y, edge_interpolated(p, cur, x, above, below));
            }
        }
    }
}

/// The sample between rows `above` and `below` at column `x`, interpolated along the direction (of three) whose two
/// samples differ least (edge-based line averaging).
fn edge_interpolated(p: &Plane, cur: Rows, x: usize, above: usize, below: usize) -> i32 {
    let mut best = (i32::MAX, 0);
    for d in [-1i64, 0, 1] {
        let (xa, xc) = (x as i64 + d, x as i64 - d);
        if xa < 0 || xc < 0 || xa >= p.width as i64 || xc >= p.width as i64 {
            continue;
        }
        let (a, c) = (p.get(cur, xa as usize, above), p.get(cur, xc as usize, below));
        let cost = (a - c).abs() + if d == 0 { 0 } else { 1 };
        if cost < best.0 {
            best = (cost, (a + c + 1) / 2);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A woven frame of two fields: `top(x, y)` on even rows, `bottom(x, y)` on odd rows (8-bit, one plane).
    fn woven(w: usize, h: usize, top: impl Fn(usize, usize) -> u8, bottom: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut v = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                v[y * w + x] = if y % 2 == 0 { top(x, y) } else { bottom(x, y) };
            }
        }
        v
    }

    /// An 8-bit plane of `w × h` samples.
    fn plane8(w: usize, h: usize) -> Plane {
        Plane {
            width: w,
            height: h,
            bytes: 1,
        }
    }

    /// Combing energy: mean |2·row[y] − row[y−1] − row[y+1]| over inner rows.
    fn comb(p: &Plane, data: &[u8]) -> f64 {
        let data = (data, p.width);
        let mut sum = 0i64;
        for y in 1..p.height - 1 {
            for x in 0..p.width {
                sum += i64::from((2 * p.get(data, x, y) - p.get(data, x, y - 1) - p.get(data, x, y + 1)).abs());
            }
        }
        sum as f64 / ((p.height - 2) * p.width) as f64
    }

    #[test]
    fn a_moving_edge_loses_its_combing_and_still_detail_stays() {
        let (w, h) = (64, 32);
        let p = plane8(w, h);
        // A vertical edge that moved 8 pixels between the fields.
        let edge = |at: usize| move |x: usize, _y: usize| if x < at { 30 } else { 220 };
        let cur = woven(w, h, edge(20), edge(28));
        let prev = woven(w, h, edge(4), edge(12));
        let mut out = cur.clone();
        rebuild_field(&p, (&cur, w), Some((&prev, w)), (&mut out, w), true, THRESHOLD_8BIT);
        assert!(comb(&p, &cur) > 20.0, "the source combs: {}", comb(&p, &cur));
        assert!(comb(&p, &out) < 2.0, "deinterlaced: {}", comb(&p, &out));
        // Still fine detail (a one-line pattern that is the same in both frames) is kept as it is.
        let stripes = |x: usize, y: usize| ((x + y) % 7 * 30) as u8;
        let still = woven(w, h, stripes, stripes);
        let mut kept = still.clone();
        rebuild_field(&p, (&still, w), Some((&still, w)), (&mut kept, w), true, THRESHOLD_8BIT);
        assert_eq!(kept, still);
    }

    #[test]
    fn the_field_shown_first_is_kept_whatever_the_order() {
        let (w, h) = (16, 8);
        let p = plane8(w, h);
        let cur = woven(w, h, |_, _| 200, |_, _| 20);
        for top_first in [true, false] {
            let mut out = cur.clone();
            rebuild_field(&p, (&cur, w), None, (&mut out, w), top_first, THRESHOLD_8BIT);
            let kept = if top_first { 200 } else { 20 };
            assert!(out.iter().all(|v| *v == kept), "{top_first}: {out:?}");
        }
    }

    #[test]
    fn sixteen_bit_samples_are_read_and_written_little_endian() {
        let p = Plane {
            width: 2,
            height: 3,
            bytes: 2,
        };
        let mut data = vec![0u8; 12];
        p.set(&mut data, 4, 1, 2, 1023);
        assert_eq!(p.get((&data, 4), 1, 2), 1023);
        assert_eq!(&data[10..12], &1023u16.to_le_bytes());
        p.set(&mut data, 4, 0, 0, 70_000);
        assert_eq!(p.get((&data, 4), 0, 0), 65535);
    }
}

#[cfg(test)]
mod decoded {
    use crate::source::{InputFormat, SourceFile, VideoSource};

    /// Mean combing energy of a decoded frame's luma: |2·row[y] − row[y−1] − row[y+1]| over inner rows.
    fn comb_energy(f: &ffmpeg_next::frame::Video) -> f64 {
        let (w, h, s, d) = (f.width() as usize, f.height() as usize, f.stride(0), f.data(0));
        let px = |x: usize, y: usize| i64::from(d[y * s + x]);
        let mut sum = 0i64;
        for y in 1..h - 1 {
            for x in 0..w {
                sum += (2 * px(x, y) - px(x, y - 1) - px(x, y + 1)).abs();
            }
        }
        sum as f64 / ((h - 2) * w) as f64
    }

    /// An interlaced H.264 transport stream (fields of a 50 Hz moving picture, top first) decodes to progressive
    /// frames, as many: the combing (the vertical energy woven frames have beyond the progressive pictures' own) is
    /// gone.
    #[test]
    fn interlaced_frames_decode_progressive() {
        let dir = std::env::temp_dir().join(format!("vod-deint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // One second of a 50 Hz moving picture, as 25 frames of two fields each (the top one first), or as its
        // every other picture progressive.
        let made = |filter: &str, codec: &str, name: &str| {
            let args = format!(
                "-f lavfi -i testsrc2=size=240x180:rate=50 -t 1 -vf {filter} -c:v libx264 {codec} -pix_fmt yuv420p"
            );
            vod_testkit::ffmpeg(&args.split(' ').collect::<Vec<_>>(), &dir.join(name))
        };
        let path = made(
            "tinterlace=mode=interleave_top",
            "-flags +ilme+ildct -x264opts tff=1",
            "i.ts",
        );
        let format = InputFormat {
            demuxer: "mpegts".into(),
            video_codecs: vec!["h264".into()],
            audio_codecs: vec![],
        };
        let source = SourceFile {
            path: &path,
            format: &format,
        };
        let mut src = VideoSource::open(source, 1).expect("open");
        let (mut frames, mut combed, mut progressive) = (0, 0.0, 0.0);
        // The same pictures progressive (every other 50 Hz picture, as the kept fields show): the detail's own
        // vertical energy, which deinterlacing cannot (and must not) remove.
        let reference = made("select=not(mod(n\\,2)),setpts=N/25/TB", "-r 25 -qp 0", "p.ts");
        let energies = |path: &std::path::Path| -> Vec<f64> {
            let mut raw = ffmpeg_next::format::input(&path).expect("raw open");
            let stream = raw
                .streams()
                .best(ffmpeg_next::media::Type::Video)
                .expect("video")
                .index();
            let mut dec =
                ffmpeg_next::codec::context::Context::from_parameters(raw.stream(stream).expect("stream").parameters())
                    .expect("ctx")
                    .decoder()
                    .video()
                    .expect("decoder");
            let mut out = Vec::new();
            for (s, packet) in raw.packets() {
                if s.index() == stream {
                    let _ = dec.send_packet(&packet);
                    let mut f = ffmpeg_next::frame::Video::empty();
                    while dec.receive_frame(&mut f).is_ok() {
                        out.push(comb_energy(&f));
                    }
                }
            }
            out
        };
        let woven = energies(&path);
        let refs = energies(&reference);
        let reference_energy = refs.iter().sum::<f64>() / refs.len().max(1) as f64;
        while let Some(f) = src.next_frame().expect("decode") {
            assert!(!f.frame.is_interlaced(), "flagged progressive");
            frames += 1;
            progressive += comb_energy(&f.frame);
        }
        for c in &woven {
            combed += c;
        }
        let (combed, progressive) = (combed / woven.len().max(1) as f64, progressive / frames.max(1) as f64);
        eprintln!(
            "per frame: progressive reference {reference_energy:.2}, woven {combed:.2}, deinterlaced {progressive:.2}"
        );
        assert_eq!(frames, 25);
        // The combing is what woven frames have beyond the progressive pictures' own energy: nine tenths of it go.
        let (excess_woven, excess_left) = (combed - reference_energy, progressive - reference_energy);
        assert!(
            excess_woven > 1.0,
            "the source combs: {combed:.2} vs {reference_energy:.2}"
        );
        assert!(
            excess_left <= 0.1 * excess_woven,
            "woven {combed:.2}, deinterlaced {progressive:.2}, progressive {reference_energy:.2}"
        );
    }
}
