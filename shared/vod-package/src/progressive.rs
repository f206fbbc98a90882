//! Progressive download stage: maps a byte range of a rendition's progressive MP4 (`ProgressiveFile`: runs of
//! stored bytes — the head, then the samples of each segment — listed in pages) onto the reads that produce it.
//! A range needs one or two pages whatever the title's length: the caller loads the pages `pages_for` names,
//! checks them with `parse_page` and gets the reads from `pieces`.
use std::ops::Range;

use vod_domain::{ProgressiveFile, ProgressiveRun, RunPage};

/// Runs a page may hold at most (the finalizer writes 256).
pub const MAX_PAGE_RUNS: usize = 4096;
/// Bytes a page may have at most.
pub const MAX_PAGE_BYTES: u64 = 1 << 20;

/// One read that produces part of a response body, in order: `len` bytes at `at` of the object `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub key: String,
    pub at: u64,
    pub len: u64,
}

/// A progressive file ready to serve: its size and its pages (a first-version description is one page, held).
#[derive(Debug, Clone)]
pub struct ProgressiveMap {
    size: u64,
    /// The object holding the pages.
    key: String,
    pages: Vec<RunPage>,
    /// The runs of a first-version description (every run inline, the head object first).
    inline: Option<Vec<ProgressiveRun>>,
}

impl ProgressiveMap {
    /// Checks a description. `head_len` is the size of a first-version description's head object (unused
    /// otherwise).
    pub fn new(file: ProgressiveFile, head_len: u64) -> Result<Self, String> {
        if let Some(p) = file.pages {
            let first = p.pages.first().ok_or("progressive file: no pages")?;
            if first.offset != 0 {
                return Err("progressive file: the first page does not start the file".into());
            }
            for w in p.pages.windows(2) {
                if w[1].offset <= w[0].offset {
                    return Err("progressive file: pages out of order".into());
                }
            }
            if p.pages
                .iter()
                .any(|pg| pg.offset >= file.size || pg.len > MAX_PAGE_BYTES)
            {
                return Err("progressive file: a page beyond the file or too large".into());
            }
            return Ok(ProgressiveMap {
                size: file.size,
                key: p.key,
                pages: p.pages,
                inline: None,
            });
        }
        let mut runs = Vec::with_capacity(file.runs.len() + 1);
        if !file.head.is_empty() {
            runs.push(ProgressiveRun {
                key: file.head,
                at: 0,
                size: head_len,
            });
        }
        runs.extend(file.runs);
        let total = runs
            .iter()
            .try_fold(0u64, |acc, r| acc.checked_add(r.size))
            .ok_or("progressive file size overflows")?;
        if total != file.size || total == 0 {
            return Err(format!(
                "progressive file: its runs make {total} bytes, the description says {}",
                file.size
            ));
        }
        Ok(ProgressiveMap {
            size: file.size,
            key: String::new(),
            pages: vec![RunPage {
                offset: 0,
                at: 0,
                len: 0,
            }],
            inline: Some(runs),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object holding the pages.
    pub fn pages_key(&self) -> &str {
        &self.key
    }

    /// The pages that hold bytes `start..=end` (within the file).
    pub fn pages_for(&self, start: u64, end: u64) -> Range<usize> {
        let first = self.pages.partition_point(|p| p.offset <= start).saturating_sub(1);
        let last = self.pages.partition_point(|p| p.offset <= end).max(first + 1);
        first..last
    }

    /// Where page `i` sits in the pages' object.
    pub fn page(&self, i: usize) -> Option<RunPage> {
        self.pages.get(i).copied()
    }

    /// Page `i`'s runs if the description holds them (first version): nothing to load.
    pub fn held(&self, i: usize) -> Option<&[ProgressiveRun]> {
        self.inline.as_deref().filter(|_| i == 0)
    }

    /// Bytes of the file that page `i` covers.
    fn page_span(&self, i: usize) -> u64 {
        let end = self.pages.get(i + 1).map_or(self.size, |p| p.offset);
        end - self.pages[i].offset
    }

    /// Parses page `i` and checks that its runs fill exactly its part of the file.
    pub fn parse_page(&self, i: usize, bytes: &[u8]) -> Result<Vec<ProgressiveRun>, String> {
        if i >= self.pages.len() {
            return Err(format!("progressive file: no page {i}"));
        }
        let runs: Vec<ProgressiveRun> =
            serde_json::from_slice(bytes).map_err(|e| format!("progressive file page {i}: {e}"))?;
        if runs.len() > MAX_PAGE_RUNS || runs.iter().any(|r| r.size == 0) {
            return Err(format!("progressive file page {i}: too many or empty runs"));
        }
        let total = runs
            .iter()
            .try_fold(0u64, |acc, r| acc.checked_add(r.size))
            .ok_or("progressive file size overflows")?;
        if total != self.page_span(i) {
            return Err(format!(
                "progressive file page {i}: its runs make {total} bytes, it covers {}",
                self.page_span(i)
            ));
        }
        Ok(runs)
    }

    /// The reads that produce bytes `start..=end` (inclusive, within the file), in order, given the runs of the
    /// pages `pages_for(start, end)` names, in that order.
    pub fn pieces(&self, first_page: usize, pages: &[&[ProgressiveRun]], start: u64, end: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        if start > end || end >= self.size {
            return out;
        }
        let stop = end + 1;
        for (i, runs) in pages.iter().enumerate() {
            let Some(page) = self.pages.get(first_page + i) else {
                break;
            };
            let mut run_start = page.offset;
            for r in runs.iter() {
                if run_start >= stop {
                    return out;
                }
                let run_end = run_start + r.size;
                let (from, to) = (start.max(run_start), stop.min(run_end));
                if from < to {
                    out.push(Piece {
                        key: r.key.clone(),
                        at: r.at + (from - run_start),
                        len: to - from,
                    });
                }
                run_start = run_end;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vod_domain::RunPages;

    fn run(k: &str, at: u64, size: u64) -> ProgressiveRun {
        ProgressiveRun {
            key: k.into(),
            at,
            size,
        }
    }

    /// A head of 10 bytes (object h), runs of 5 (a@100), 3 (b@7), 4 (a@0): first version, and the same in
    /// pages of two runs.
    fn inline() -> ProgressiveMap {
        let file = ProgressiveFile {
            size: 22,
            head: "h".into(),
            runs: vec![run("a", 100, 5), run("b", 7, 3), run("a", 0, 4)],
            pages: None,
        };
        ProgressiveMap::new(file, 10).unwrap()
    }

    fn paged() -> (ProgressiveMap, Vec<Vec<u8>>) {
        let pages = [
            vec![run("h", 0, 10), run("a", 100, 5)],
            vec![run("b", 7, 3), run("a", 0, 4)],
        ];
        let bytes: Vec<Vec<u8>> = pages.iter().map(|p| serde_json::to_vec(p).unwrap()).collect();
        let file = ProgressiveFile {
            size: 22,
            head: String::new(),
            runs: Vec::new(),
            pages: Some(RunPages {
                key: "p".into(),
                pages: vec![
                    RunPage {
                        offset: 0,
                        at: 0,
                        len: bytes[0].len() as u64,
                    },
                    RunPage {
                        offset: 15,
                        at: bytes[0].len() as u64,
                        len: bytes[1].len() as u64,
                    },
                ],
            }),
        };
        (ProgressiveMap::new(file, 0).unwrap(), bytes)
    }

    /// The bytes each piece stands for, as (object, offset) pairs.
    fn expand(p: &[Piece]) -> Vec<(String, u64)> {
        p.iter()
            .flat_map(|x| (x.at..x.at + x.len).map(|i| (x.key.clone(), i)))
            .collect()
    }

    /// The pieces of a range, loading the pages the map names.
    fn read(m: &ProgressiveMap, pages: &[Vec<u8>], start: u64, end: u64) -> Vec<Piece> {
        let span = m.pages_for(start, end);
        let loaded: Vec<Vec<ProgressiveRun>> = span
            .clone()
            .map(|i| match m.held(i) {
                Some(r) => r.to_vec(),
                None => m.parse_page(i, &pages[i]).unwrap(),
            })
            .collect();
        let refs: Vec<&[ProgressiveRun]> = loaded.iter().map(Vec::as_slice).collect();
        m.pieces(span.start, &refs, start, end)
    }

    #[test]
    fn every_range_maps_to_the_same_bytes_as_the_whole_file() {
        let (p, bytes) = paged();
        for (m, pages) in [(inline(), vec![]), (p, bytes)] {
            let whole = expand(&read(&m, &pages, 0, 21));
            assert_eq!(whole.len(), 22);
            assert_eq!(whole[0], ("h".into(), 0));
            assert_eq!(whole[10], ("a".into(), 100));
            assert_eq!(whole[15], ("b".into(), 7));
            assert_eq!(whole[18], ("a".into(), 0));
            for start in 0..22 {
                for end in start..22 {
                    assert_eq!(
                        expand(&read(&m, &pages, start, end)),
                        whole[start as usize..=end as usize].to_vec()
                    );
                }
            }
            assert!(read(&m, &pages, 0, 22).is_empty() && read(&m, &pages, 5, 4).is_empty());
        }
    }

    #[test]
    fn a_range_loads_only_its_pages() {
        let (m, _) = paged();
        assert_eq!(m.pages_for(0, 14), 0..1);
        assert_eq!(m.pages_for(14, 15), 0..2);
        assert_eq!(m.pages_for(15, 21), 1..2);
    }

    #[test]
    fn a_file_stored_whole_is_one_run_without_a_head() {
        // What the packager makes of a `progressive.mp4` stored by earlier versions.
        let file = ProgressiveFile {
            size: 1000,
            head: String::new(),
            runs: vec![run("old/progressive.mp4", 0, 1000)],
            pages: None,
        };
        let m = ProgressiveMap::new(file, 0).unwrap();
        assert_eq!(
            read(&m, &[], 10, 19),
            vec![Piece {
                key: "old/progressive.mp4".into(),
                at: 10,
                len: 10
            }]
        );
    }

    #[test]
    fn inconsistent_descriptions_and_pages_are_refused() {
        let f = ProgressiveFile {
            size: 23,
            head: "h".into(),
            runs: vec![run("a", 100, 5)],
            pages: None,
        };
        assert!(ProgressiveMap::new(f.clone(), 10).is_err());
        let mut g = f.clone();
        g.runs[0].size = u64::MAX;
        assert!(ProgressiveMap::new(g, 10).is_err());
        let (m, bytes) = paged();
        assert!(m.parse_page(1, b"[{\"key\":\"a\",\"at\":0,\"size\":6}]").is_err());
        assert!(m.parse_page(1, b"not json").is_err());
        assert!(m.parse_page(2, &bytes[1]).is_err());
        let mut bad = f;
        bad.pages = Some(RunPages {
            key: "p".into(),
            pages: vec![RunPage {
                offset: 3,
                at: 0,
                len: 1,
            }],
        });
        assert!(ProgressiveMap::new(bad, 0).is_err());
    }
}
