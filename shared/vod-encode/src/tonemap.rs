//! Tone mapping of HDR pictures (PQ or HLG, BT.2020) to SDR BT.709 for the 8-bit renditions of an HDR source, at
//! the source's size before scaling: Y'CbCr → R'G'B' (BT.2020) → linear light (the PQ EOTF, or HLG's inverse OETF
//! and its OOTF) → the BT.2390 EETF, which rolls the source's peak off to SDR's 100 cd/m² in the PQ domain, applied
//! to the largest of R, G, B so hues keep → BT.2020 to BT.709 primaries → BT.1886 inverse EOTF → Y'CbCr BT.709,
//! limited range, chroma averaged per 2×2 block.
//!
//! Hand-written: libavfilter's zscale and tonemap filters are not in the media layer (its 250 MiB budget), and
//! swscale converts formats but not transfer functions.

use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use crate::scale::Picture;
use crate::EncodeError;

/// SDR reference white, cd/m².
const SDR_PEAK: f32 = 100.0;
/// The peak assumed when the source states none: HDR10's common mastering peak.
const DEFAULT_PEAK: f32 = 1000.0;
/// Entries of the lookup tables over [0, 1].
const LUT: usize = 4096;

/// The HDR transfer functions the mapper reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Pq,
    Hlg,
}

/// Maps 10-bit HDR pictures to 8-bit SDR BT.709 ones; built once per source.
pub(crate) struct ToneMapper {
    /// Linear light in cd/m² of a 12-bit-quantised non-linear value (index = value × (LUT − 1)).
    eotf: Vec<f32>,
    /// The tone curve over linear light normalised to the source peak: out[i] is SDR linear (0..=1) of
    /// i / (LUT − 1) × peak.
    curve: Vec<f32>,
    /// BT.1886 inverse EOTF of SDR linear light.
    oetf: Vec<f32>,
    transfer: Transfer,
    peak: f32,
}

/// ST 2084 (PQ) constants.
const M1: f64 = 2610.0 / 16384.0;
const M2: f64 = 2523.0 / 4096.0 * 128.0;
const C1: f64 = 3424.0 / 4096.0;
const C2: f64 = 2413.0 / 4096.0 * 32.0;
const C3: f64 = 2392.0 / 4096.0 * 32.0;

/// PQ EOTF: non-linear [0, 1] → cd/m².
fn pq_eotf(e: f64) -> f64 {
    let p = e.clamp(0.0, 1.0).powf(1.0 / M2);
    10_000.0 * ((p - C1).max(0.0) / (C2 - C3 * p)).powf(1.0 / M1)
}

/// PQ inverse EOTF: cd/m² → non-linear [0, 1].
fn pq_inverse(nits: f64) -> f64 {
    let y = (nits / 10_000.0).clamp(0.0, 1.0).powf(M1);
    ((C1 + C2 * y) / (1.0 + C3 * y)).powf(M2)
}

/// HLG inverse OETF (BT.2100): non-linear [0, 1] → scene linear [0, 1].
fn hlg_inverse_oetf(e: f64) -> f64 {
    let (a, b, c) = (0.178_832_77, 0.284_668_92, 0.559_910_73);
    if e <= 0.5 {
        e * e / 3.0
    } else {
        (((e - c) / a).exp() + b) / 12.0
    }
}

/// The BT.2390 EETF: maps `nits` of a source peaking at `peak` to a display peaking at [`SDR_PEAK`], in the PQ
/// domain (a knee, then a Hermite spline to the target peak).
fn eetf(nits: f64, peak: f64) -> f64 {
    let (src_peak, dst_peak) = (pq_inverse(peak), pq_inverse(f64::from(SDR_PEAK)));
    let e1 = pq_inverse(nits) / src_peak;
    let max_lum = dst_peak / src_peak;
    let ks = 1.5 * max_lum - 0.5;
    let e2 = if e1 < ks || ks >= 1.0 {
        e1
    } else {
        let t = (e1 - ks) / (1.0 - ks);
        let (t2, t3) = (t * t, t * t * t);
        (2.0 * t3 - 3.0 * t2 + 1.0) * ks + (t3 - 2.0 * t2 + t) * (1.0 - ks) + (-2.0 * t3 + 3.0 * t2) * max_lum
    };
    pq_eotf((e2.min(max_lum)) * src_peak)
}

/// Linear BT.2020 RGB → linear BT.709 RGB (ITU-R BT.2087).
const BT2020_TO_BT709: [[f32; 3]; 3] = [
    [1.660_491, -0.587_641_1, -0.072_849_9],
    [-0.124_550_5, 1.132_899_9, -0.008_349_4],
    [-0.018_150_8, -0.100_578_9, 1.118_729_7],
];

impl ToneMapper {
    /// The mapper for a source of this transfer characteristic (H.273: 16 = PQ, 18 = HLG), `None` for others (SDR
    /// sources need none). `peak`: the source's mastering peak in cd/m², if known.
    pub(crate) fn for_transfer(transfer: u8, peak: Option<f32>) -> Option<ToneMapper> {
        let transfer = match transfer {
            16 => Transfer::Pq,
            18 => Transfer::Hlg,
            _ => return None,
        };
        let peak = peak
            .filter(|p| p.is_finite() && *p > SDR_PEAK)
            .unwrap_or(DEFAULT_PEAK)
            .min(10_000.0);
        let at = |i: usize| i as f64 / (LUT - 1) as f64;
        let eotf = (0..LUT)
            .map(|i| match transfer {
                Transfer::Pq => pq_eotf(at(i)) as f32,
                // HLG's OOTF with the system gamma of a 1000 cd/m² display (1.2), applied per component.
                Transfer::Hlg => (f64::from(peak) * hlg_inverse_oetf(at(i)).powf(1.2)) as f32,
            })
            .collect();
        let curve = (0..LUT)
            .map(|i| (eetf(at(i) * f64::from(peak), f64::from(peak)) / f64::from(SDR_PEAK)).clamp(0.0, 1.0) as f32)
            .collect();
        let oetf = (0..LUT).map(|i| at(i).powf(1.0 / 2.4) as f32).collect();
        Some(ToneMapper {
            eotf,
            curve,
            oetf,
            transfer,
            peak,
        })
    }

    fn lookup(table: &[f32], x: f32) -> f32 {
        // + 0.5 and truncation rounds (x ≥ 0): `f32::round` is a libm call per sample without SSE4.1.
        let i = (x.clamp(0.0, 1.0) * (LUT - 1) as f32 + 0.5) as usize;
        table.get(i).copied().unwrap_or(0.0)
    }

    /// SDR linear BT.709 RGB of one pixel's BT.2020 R'G'B' (each [0, 1]).
    fn pixel(&self, rgb: [f32; 3]) -> [f32; 3] {
        let lin = rgb.map(|c| Self::lookup(&self.eotf, c));
        let max = lin[0].max(lin[1]).max(lin[2]);
        let scale = if max > 0.0 {
            Self::lookup(&self.curve, max / self.peak) * SDR_PEAK / max
        } else {
            0.0
        };
        // Now in SDR units (1 = 100 cd/m²), then into BT.709 primaries.
        let sdr = lin.map(|c| c * scale / SDR_PEAK);
        let m = &BT2020_TO_BT709;
        [0, 1, 2].map(|r| (m[r][0] * sdr[0] + m[r][1] * sdr[1] + m[r][2] * sdr[2]).clamp(0.0, 1.0))
    }

    /// Maps a decoded frame (any format swscale reads; converted to 10-bit 4:2:0 first) to an 8-bit BT.709 YUV420P
    /// frame of the same size.
    pub(crate) fn map(
        &self,
        src: &frame::Video,
        to10: &mut crate::scale::Scaler,
        threads: usize,
    ) -> Result<frame::Video, EncodeError> {
        let pic = to10.scale(src)?;
        if pic.depth != 10 {
            return Err(EncodeError::Encode("the tone mapper reads 10-bit pictures".into()));
        }
        Ok(self.map_picture(&pic, threads).to_frame())
    }

    /// Maps a 10-bit limited-range BT.2020 picture to an 8-bit limited-range BT.709 one, in bands of rows on
    /// `threads` threads (about 60 ns a pixel on one core of this machine).
    pub(crate) fn map_picture(&self, pic: &Picture, threads: usize) -> Picture {
        let (w, h) = (pic.width, pic.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y8 = vec![16u8; w * h];
        let mut u8s = vec![128u8; cw * ch];
        let mut v8s = vec![128u8; cw * ch];
        // Each band: whole chroma rows and the two luma rows of each.
        let band = ch.div_ceil(threads.clamp(1, 16)).max(1);
        std::thread::scope(|scope| {
            let bands = y8
                .chunks_mut(2 * w * band)
                .zip(u8s.chunks_mut(cw * band))
                .zip(v8s.chunks_mut(cw * band))
                .enumerate();
            for (k, ((y_band, u_band), v_band)) in bands {
                scope.spawn(move || self.map_band(pic, k * band, y_band, u_band, v_band));
            }
        });
        Picture {
            width: w,
            height: h,
            depth: 8,
            planes: [y8, u8s, v8s],
        }
    }

    /// Maps the chroma rows from `first` on (as many as `u_out` holds) and their luma rows.
    fn map_band(&self, pic: &Picture, first: usize, y_out: &mut [u8], u_out: &mut [u8], v_out: &mut [u8]) {
        let (w, h) = (pic.width, pic.height);
        let cw = w.div_ceil(2);
        let sample = |plane: usize, i: usize| -> f32 {
            let p = &pic.planes[plane];
            f32::from(u16::from_le_bytes([
                p.get(2 * i).copied().unwrap_or(0),
                p.get(2 * i + 1).copied().unwrap_or(0),
            ]))
        };
        for (row, (u_row, v_row)) in u_out.chunks_mut(cw).zip(v_out.chunks_mut(cw)).enumerate() {
            let cy = first + row;
            for cx in 0..cw {
                let ci = cy * cw + cx;
                let cb = (sample(1, ci) - 512.0) / 896.0;
                let cr = (sample(2, ci) - 512.0) / 896.0;
                let (mut sum_b, mut sum_r, mut n) = (0.0f32, 0.0f32, 0.0f32);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (2 * cx + dx, 2 * cy + dy);
                    if x >= w || y >= h {
                        continue;
                    }
                    let luma = (sample(0, y * w + x) - 64.0) / 876.0;
                    // BT.2020 non-constant luminance Y'CbCr → R'G'B'.
                    let rgb = [
                        luma + 1.4746 * cr,
                        luma - 0.164_553 * cb - 0.571_353 * cr,
                        luma + 1.8814 * cb,
                    ];
                    let [r, g, b] = self.pixel(rgb).map(|c| Self::lookup(&self.oetf, c));
                    // BT.709 R'G'B' → Y'CbCr.
                    let yy = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                    if let Some(out) = y_out.get_mut((y - 2 * first) * w + x) {
                        *out = (16.5 + 219.0 * yy).clamp(16.0, 235.0) as u8;
                    }
                    sum_b += (b - yy) / 1.8556;
                    sum_r += (r - yy) / 1.5748;
                    n += 1.0;
                }
                let n = n.max(1.0);
                u_row[cx] = (128.5 + 224.0 * sum_b / n).clamp(16.0, 240.0) as u8;
                v_row[cx] = (128.5 + 224.0 * sum_r / n).clamp(16.0, 240.0) as u8;
            }
        }
    }

    /// The transfer it reads, for logs.
    pub(crate) fn describe(&self) -> String {
        format!("{:?} peaking at {} cd/m²", self.transfer, self.peak)
    }
}

/// Frames of a source as its SDR (8-bit) pictures see them — the renditions, thumbnails and poster: tone-mapped
/// when the source is HDR (the mapper made on the first frame, from its mastering peak), else as decoded.
pub(crate) struct SdrFrames {
    /// The source's transfer characteristic, when HDR.
    transfer: Option<u8>,
    threads: usize,
    mapper: Option<(ToneMapper, crate::scale::Scaler)>,
    /// The last frame mapped, by the caller's serial: every SDR rung of a frame shares it.
    last: Option<(u64, frame::Video)>,
}

impl SdrFrames {
    pub(crate) fn new(source: &crate::source::VideoSource, threads: usize) -> Self {
        let transfer = source.colour().1.map(|c| c.transfer).filter(|t| matches!(t, 16 | 18));
        SdrFrames {
            transfer,
            threads,
            mapper: None,
            last: None,
        }
    }

    /// The frame to show in SDR: `f` itself for an SDR source, else its tone-mapped picture, made once per `serial`.
    pub(crate) fn frame<'a>(&'a mut self, serial: u64, f: &'a frame::Video) -> Result<&'a frame::Video, EncodeError> {
        let Some(transfer) = self.transfer else {
            return Ok(f);
        };
        if self.mapper.is_none() {
            let peak = crate::source::hdr_metadata(f)
                .0
                .map(|m| m.max_luminance as f32 / 10_000.0);
            self.mapper = ToneMapper::for_transfer(transfer, peak).map(|t| {
                tracing::info!(source = %t.describe(), "SDR pictures are tone-mapped to BT.709");
                (t, crate::scale::Scaler::with_depth(f.width(), f.height(), 0, 10))
            });
        }
        let Some((tone, to10)) = self.mapper.as_mut() else {
            return Ok(f);
        };
        if !matches!(&self.last, Some((s, _)) if *s == serial) {
            self.last = Some((serial, tone.map(f, to10, self.threads)?));
        }
        Ok(self.last.as_ref().map_or(f, |(_, mapped)| mapped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pq_round_trips_and_the_eetf_rolls_off_to_sdr_white() {
        for nits in [0.0, 0.5, 100.0, 203.0, 1000.0, 4000.0] {
            let back = pq_eotf(pq_inverse(nits));
            assert!((back - nits).abs() <= nits * 1e-6 + 1e-6, "{nits} -> {back}");
        }
        // Dark tones pass unchanged, the source peak lands on SDR white, and the curve never decreases.
        assert!((eetf(1.0, 1000.0) - 1.0).abs() < 0.01);
        assert!((eetf(1000.0, 1000.0) - 100.0).abs() < 0.5, "{}", eetf(1000.0, 1000.0));
        let mut last = 0.0;
        for i in 0..=1000 {
            let out = eetf(f64::from(i), 1000.0);
            assert!(out + 1e-9 >= last && out <= 100.0 + 1e-6, "{i}: {out}");
            last = out;
        }
        // Reference white (203 cd/m²) stays below SDR white, well above mid grey.
        let white = eetf(203.0, 1000.0);
        assert!((60.0..100.0).contains(&white), "{white}");
    }

    /// A uniform 10-bit picture of one PQ grey level.
    fn grey(nits: f64) -> Picture {
        let code = (64.0 + 876.0 * pq_inverse(nits)).round() as u16;
        let plane = |n: usize, v: u16| (0..n).flat_map(|_| v.to_le_bytes()).collect::<Vec<u8>>();
        Picture {
            width: 4,
            height: 2,
            depth: 10,
            planes: [plane(8, code), plane(2, 512), plane(2, 512)],
        }
    }

    #[test]
    fn pq_greys_map_to_sdr_greys() {
        let m = ToneMapper::for_transfer(16, None).expect("PQ");
        let luma = |nits: f64| m.map_picture(&grey(nits), 1).planes[0][0];
        // Black stays black, the 1000 cd/m² peak is SDR white, 100 cd/m² a bright grey, and order is kept.
        assert_eq!(luma(0.0), 16);
        assert!(luma(1000.0) >= 233, "{}", luma(1000.0));
        let mid = luma(100.0);
        assert!((150..=225).contains(&mid), "{mid}");
        assert!(luma(10.0) < mid && mid < luma(400.0));
        // Neutral stays neutral.
        let p = m.map_picture(&grey(100.0), 2);
        assert!(
            p.planes[1].iter().chain(&p.planes[2]).all(|c| (127..=129).contains(c)),
            "{:?}",
            p.planes
        );
        // Bands of rows on several threads give the same picture, odd sizes included.
        let (w, h) = (33, 17);
        let ramp = |n: usize, base: u16| (0..n).flat_map(|i| (base + (i % 700) as u16).to_le_bytes()).collect();
        let odd = Picture {
            width: w,
            height: h,
            depth: 10,
            planes: [ramp(w * h, 64), ramp(17 * 9, 300), ramp(17 * 9, 200)],
        };
        let one = m.map_picture(&odd, 1);
        assert_eq!(m.map_picture(&odd, 3), one);
        assert_eq!(m.map_picture(&odd, 16), one);
        assert_eq!(one.planes.map(|p| p.len()), [w * h, 17 * 9, 17 * 9]);
        assert!(ToneMapper::for_transfer(1, None).is_none());
        assert!(ToneMapper::for_transfer(18, None).is_some());
    }
}
