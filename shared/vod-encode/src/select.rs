//! Frame selection onto the constant-frame-rate output grid.
//!
//! Output frame `i` is shown at `i × den / num` seconds. It takes the latest decoded frame whose
//! timestamp is at or before that time; a timestamp up to one source tick late (capped at half an output
//! frame) still counts as "at", so millisecond-rounded timestamps (Matroska, `30000/1001` → 33, 67 ms...)
//! neither drop nor repeat frames. Output times before the first decoded frame take the first frame;
//! output times after the last one repeat it. Frames whose timestamp goes backwards are ignored.

/// Chooses, for each output index in `[next, end)`, which decoded frame it shows.
pub(crate) struct GridSelector<T> {
    /// Output frame rate `num / den` (frames per second).
    fps: (i128, i128),
    /// Source time base `num / den` (seconds per tick).
    time_base: (i128, i128),
    /// Source timestamp of presentation time zero.
    origin: i64,
    next: u64,
    end: u64,
    held: Option<(i64, T)>,
}

impl<T> GridSelector<T> {
    /// Selector for output indices `[start, end)`. `fps` and `time_base` must have non-zero terms.
    pub(crate) fn new(fps: (u32, u32), time_base: (i32, i32), origin: i64, start: u64, end: u64) -> Self {
        Self {
            fps: (i128::from(fps.0), i128::from(fps.1)),
            time_base: (i128::from(time_base.0), i128::from(time_base.1)),
            origin,
            next: start,
            end,
            held: None,
        }
    }

    /// Whether every output index has been assigned.
    pub(crate) fn done(&self) -> bool {
        self.next >= self.end
    }

    /// True when a frame at `pts` would be shown at the next unassigned output index.
    pub(crate) fn covers_next(&self, pts: i64) -> bool {
        self.at_or_before(pts, self.next)
    }

    /// True when a frame at source timestamp `pts` counts as shown at or before output index `i`.
    fn at_or_before(&self, pts: i64, i: u64) -> bool {
        let (fn_, fd) = self.fps;
        let (tn, td) = self.time_base;
        // Units of 1 / (2 × td × fn) seconds.
        let p = i128::from(pts)
            .saturating_sub(i128::from(self.origin))
            .saturating_mul(tn)
            .saturating_mul(fn_)
            .saturating_mul(2);
        let t = i128::from(i).saturating_mul(fd).saturating_mul(td).saturating_mul(2);
        let tolerance = (tn.saturating_mul(fn_).saturating_mul(2)).min(fd.saturating_mul(td));
        p <= t.saturating_add(tolerance)
    }

    /// Offers the next decoded frame (in presentation order). `emit(index, frame)` is called for every
    /// output index whose choice became final.
    pub(crate) fn push<E>(
        &mut self,
        pts: i64,
        frame: T,
        emit: &mut impl FnMut(u64, &T) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some((held_pts, _)) = &self.held {
            if pts < *held_pts {
                tracing::debug!(pts, held_pts, "ignoring frame with a timestamp going backwards");
                return Ok(());
            }
        }
        while self.next < self.end && !self.at_or_before(pts, self.next) {
            // The new frame is after output time `next`: the held frame (or, before any, this one) shows.
            match &self.held {
                Some((_, held)) => emit(self.next, held)?,
                None => emit(self.next, &frame)?,
            }
            self.next += 1;
        }
        self.held = Some((pts, frame));
        Ok(())
    }

    /// End of the stream: the last frame fills the remaining indices. Returns false when no frame was
    /// ever offered and indices remain.
    pub(crate) fn finish<E>(&mut self, emit: &mut impl FnMut(u64, &T) -> Result<(), E>) -> Result<bool, E> {
        if self.next >= self.end {
            return Ok(true);
        }
        let Some((_, held)) = &self.held else {
            return Ok(false);
        };
        while self.next < self.end {
            emit(self.next, held)?;
            self.next += 1;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fps: (u32, u32), tb: (i32, i32), origin: i64, start: u64, end: u64, pts: &[i64]) -> Vec<(u64, i64)> {
        let mut sel = GridSelector::new(fps, tb, origin, start, end);
        let mut out = Vec::new();
        let mut emit = |i: u64, f: &i64| -> Result<(), ()> {
            out.push((i, *f));
            Ok(())
        };
        for &p in pts {
            sel.push(p, p, &mut emit).ok();
        }
        sel.finish(&mut emit).ok();
        out
    }

    #[test]
    fn cfr_source_maps_one_to_one() {
        let pts: Vec<i64> = (0..10).map(|i| i * 512).collect();
        let out = run((25, 1), (1, 12800), 0, 0, 10, &pts);
        assert_eq!(out, (0..10).map(|i| (i as u64, i * 512)).collect::<Vec<_>>());
    }

    #[test]
    fn chunk_window_and_preroll() {
        // Decoding starts at a key frame before the chunk: earlier frames are dropped.
        let pts: Vec<i64> = (0..20).map(|i| i * 512).collect();
        let out = run((25, 1), (1, 12800), 0, 5, 8, &pts);
        assert_eq!(out, vec![(5, 2560), (6, 3072), (7, 3584)]);
    }

    #[test]
    fn millisecond_rounding_neither_drops_nor_repeats() {
        // 29.97 fps in a 1/1000 time base: 0, 33, 67, 100, 133, 167 ms.
        let pts: Vec<i64> = (0..6).map(|i: i64| (i * 1001 + 15) / 30).collect();
        let out = run((30000, 1001), (1, 1000), 0, 0, 6, &pts);
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), pts);
    }

    #[test]
    fn vfr_picks_latest_at_or_before_and_holds_last() {
        // 10 fps output from frames at 0, 0.25, 0.35 s (time base 1/100), origin 0.
        let out = run((10, 1), (1, 100), 0, 0, 6, &[0, 25, 35]);
        assert_eq!(out, vec![(0, 0), (1, 0), (2, 0), (3, 25), (4, 35), (5, 35)]);
    }

    #[test]
    fn origin_and_late_start_and_backwards() {
        // Stream starts at 1000 ticks; its first frame is 0.2 s late; a backwards frame is ignored.
        let out = run((10, 1), (1, 100), 1000, 0, 4, &[1020, 1010, 1030]);
        assert_eq!(out, vec![(0, 1020), (1, 1020), (2, 1020), (3, 1030)]);
        assert!(run((10, 1), (1, 100), 0, 0, 3, &[]).is_empty());
    }
}
