//! Exact rational time arithmetic: the CFR grid, segment boundaries and the video timescale.
//!
//! Everything is integer arithmetic on `u128`/`i128`; the only floating-point input, the segment
//! duration, is read at microsecond precision (so `2.002` means exactly 2002/1000 s).

/// Segment duration as an exact fraction of seconds (`num / den`), read at microsecond precision.
pub(crate) fn duration_fraction(seconds: f64) -> Option<(u128, u128)> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let micros = (seconds * 1_000_000.0).round();
    if !(1.0..=1e15).contains(&micros) {
        return None;
    }
    // In range 1..=1e15, so the cast is exact.
    let micros = micros as u128;
    let g = gcd(micros, 1_000_000);
    Some((micros / g, 1_000_000 / g))
}

/// Greatest common divisor.
pub(crate) fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `ceil(a / b)` for `b > 0`.
fn div_ceil(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
}

/// Index of the first frame of segment `k` on the CFR grid: `ceil(k × segment_duration × num / den)`,
/// computed exactly. Returns 0 for a non-positive or non-finite duration or a zero frame rate.
pub fn segment_start_frame(k: u32, segment_duration: f64, frame_rate: (u32, u32)) -> u64 {
    let (num, den) = frame_rate;
    let Some((sn, sd)) = duration_fraction(segment_duration) else {
        return 0;
    };
    if num == 0 || den == 0 {
        return 0;
    }
    let numerator = u128::from(k) * sn * u128::from(num);
    let denominator = sd * u128::from(den);
    u64::try_from(div_ceil(numerator, denominator)).unwrap_or(u64::MAX)
}

/// First 48 kHz sample of audio segment `k`: `ceil(k × segment_duration × 48000)`.
pub(crate) fn segment_start_sample(k: u64, segment_duration: (u128, u128), rate: u32) -> u64 {
    let (sn, sd) = segment_duration;
    let v = div_ceil(u128::from(k) * sn * u128::from(rate), sd);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The video track's timescale and per-frame duration for a frame rate `num/den`: the reduced rate scaled
/// by `k` so the timescale is near 90 kHz (25 fps → 90000/3600, 30000/1001 → 90000/3003), both fitting
/// in `u32`. Returns `None` for a zero rate.
pub(crate) fn video_timescale(frame_rate: (u32, u32)) -> Option<(u32, u32)> {
    let (num, den) = frame_rate;
    if num == 0 || den == 0 {
        return None;
    }
    let g = gcd(u128::from(num), u128::from(den));
    let (num, den) = (u128::from(num) / g, u128::from(den) / g);
    let mut k = (90_000 / num).max(1);
    while k > 1 && (num * k > u128::from(u32::MAX) || den * k > u128::from(u32::MAX)) {
        k /= 2;
    }
    Some((u32::try_from(num * k).ok()?, u32::try_from(den * k).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_starts_are_exact() {
        assert_eq!(segment_start_frame(0, 4.0, (25, 1)), 0);
        assert_eq!(segment_start_frame(1, 4.0, (25, 1)), 100);
        assert_eq!(segment_start_frame(3, 1.0, (25, 1)), 75);
        // 29.97 fps with 2.002 s segments: exactly 60 frames each.
        assert_eq!(segment_start_frame(1, 2.002, (30000, 1001)), 60);
        assert_eq!(segment_start_frame(1000, 2.002, (30000, 1001)), 60_000);
        // 29.97 with 4 s segments: 119.88 → 120, 239.76 → 240, 359.64 → 360, ...
        assert_eq!(segment_start_frame(1, 4.0, (30000, 1001)), 120);
        assert_eq!(segment_start_frame(5, 4.0, (30000, 1001)), 600);
        assert_eq!(segment_start_frame(25, 4.0, (30000, 1001)), 2998);
        assert_eq!(segment_start_frame(1, f64::NAN, (25, 1)), 0);
        assert_eq!(segment_start_frame(1, 1.0, (0, 1)), 0);
    }

    #[test]
    fn timescales() {
        assert_eq!(video_timescale((25, 1)), Some((90000, 3600)));
        assert_eq!(video_timescale((30000, 1001)), Some((90000, 3003)));
        assert_eq!(video_timescale((24000, 1001)), Some((72000, 3003)));
        assert_eq!(video_timescale((50, 2)), Some((90000, 3600)));
        assert_eq!(video_timescale((0, 1)), None);
        assert!(video_timescale((u32::MAX, u32::MAX - 1)).is_some());
    }
}
