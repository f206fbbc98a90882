//! Progressive download stage: maps a byte range of a rendition's progressive MP4 (`ProgressiveFile`: a head
//! object followed by runs of samples stored in the segments) onto the reads that produce it.
use vod_domain::ProgressiveFile;

/// One read that produces part of a response body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes `start..end` of the head.
    Head { start: usize, end: usize },
    /// `len` bytes at `at` of the object `key`.
    Object { key: &'a str, at: u64, len: u64 },
}

/// A progressive file ready to serve: its description with each run's offset in the file.
#[derive(Debug, Clone)]
pub struct ProgressiveMap {
    pub file: ProgressiveFile,
    head_len: u64,
    /// File offset of each run's first byte.
    offsets: Vec<u64>,
}

impl ProgressiveMap {
    /// Checks that the runs follow the head back to back and add up to the file's size.
    pub fn new(file: ProgressiveFile, head_len: u64) -> Result<Self, String> {
        let mut offsets = Vec::with_capacity(file.runs.len());
        let mut at = head_len;
        for r in &file.runs {
            offsets.push(at);
            at = at
                .checked_add(r.size)
                .ok_or_else(|| "progressive file size overflows".to_string())?;
        }
        if at != file.size {
            return Err(format!(
                "progressive file: head and runs make {at} bytes, the description says {}",
                file.size
            ));
        }
        Ok(ProgressiveMap {
            file,
            head_len,
            offsets,
        })
    }

    pub fn size(&self) -> u64 {
        self.file.size
    }

    /// The reads that produce bytes `start..=end` (inclusive, within the file), in order.
    pub fn pieces(&self, start: u64, end: u64) -> Vec<Piece<'_>> {
        let mut out = Vec::new();
        if start > end || end >= self.file.size {
            return out;
        }
        let stop = end + 1;
        if start < self.head_len {
            out.push(Piece::Head {
                start: start as usize,
                end: stop.min(self.head_len) as usize,
            });
        }
        // The first run that ends after `start`.
        let first = self.offsets.partition_point(|&o| o <= start).saturating_sub(1);
        for (i, r) in self.file.runs.iter().enumerate().skip(first) {
            let run_start = self.offsets[i];
            if run_start >= stop {
                break;
            }
            let from = start.max(run_start);
            let to = stop.min(run_start + r.size);
            if from < to {
                out.push(Piece::Object {
                    key: &r.key,
                    at: r.at + (from - run_start),
                    len: to - from,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vod_domain::ProgressiveRun;

    fn map() -> ProgressiveMap {
        // head 10 bytes, runs of 5 (a@100), 3 (b@7), 4 (a@0)
        let run = |k: &str, at, size| ProgressiveRun {
            key: k.into(),
            at,
            size,
        };
        let file = ProgressiveFile {
            size: 22,
            head: "h".into(),
            runs: vec![run("a", 100, 5), run("b", 7, 3), run("a", 0, 4)],
        };
        ProgressiveMap::new(file, 10).unwrap()
    }

    /// The bytes each piece stands for, as (source, offset) pairs.
    fn expand(p: &[Piece<'_>]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for x in p {
            match x {
                Piece::Head { start, end } => out.extend((*start..*end).map(|i| ("h".to_string(), i as u64))),
                Piece::Object { key, at, len } => out.extend((*at..*at + *len).map(|i| (key.to_string(), i))),
            }
        }
        out
    }

    #[test]
    fn every_range_maps_to_the_same_bytes_as_the_whole_file() {
        let m = map();
        let whole = expand(&m.pieces(0, 21));
        assert_eq!(whole.len(), 22);
        assert_eq!(whole[10], ("a".into(), 100));
        assert_eq!(whole[15], ("b".into(), 7));
        assert_eq!(whole[18], ("a".into(), 0));
        for start in 0..22 {
            for end in start..22 {
                assert_eq!(
                    expand(&m.pieces(start, end)),
                    whole[start as usize..=end as usize].to_vec()
                );
            }
        }
        assert!(m.pieces(0, 22).is_empty() && m.pieces(5, 4).is_empty());
    }

    #[test]
    fn a_file_stored_whole_is_one_run_without_a_head() {
        // What the packager makes of a `progressive.mp4` stored by earlier versions.
        let file = ProgressiveFile {
            size: 1000,
            head: String::new(),
            runs: vec![ProgressiveRun {
                key: "old/progressive.mp4".into(),
                at: 0,
                size: 1000,
            }],
        };
        let m = ProgressiveMap::new(file, 0).unwrap();
        assert_eq!(
            m.pieces(10, 19),
            vec![Piece::Object {
                key: "old/progressive.mp4",
                at: 10,
                len: 10
            }]
        );
        assert_eq!(expand(&m.pieces(0, 999)).len(), 1000);
    }

    #[test]
    fn inconsistent_descriptions_are_refused() {
        let mut f = map().file;
        f.size = 23;
        assert!(ProgressiveMap::new(f.clone(), 10).is_err());
        f.runs[0].size = u64::MAX;
        assert!(ProgressiveMap::new(f, 10).is_err());
    }
}
