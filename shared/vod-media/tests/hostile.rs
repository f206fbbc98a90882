//! A hostile corpus against the probe: each file is refused with a clear error, quickly, reading little and in
//! bounded memory — a million `free` boxes, sample-table bombs (one track or many), entry counts that lie about
//! their box, tables that disagree, chunks outside the file, deep nesting, a polyglot, a truncated file, and a
//! source that reads slowly (the wall-clock budget).
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vod_media::{probe, probe_within, ProbeError, ReadAt};

#[global_allocator]
static A: vod_testkit::PeakAlloc = vod_testkit::PeakAlloc;

/// A source that counts reads.
struct Counting {
    data: Vec<u8>,
    reads: AtomicU64,
}

impl Counting {
    fn new(data: Vec<u8>) -> Self {
        Counting {
            data,
            reads: AtomicU64::new(0),
        }
    }
}

impl ReadAt for Counting {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.data.read_at(offset, len)
    }
}

/// Probes `data`; returns the error, the reads made and the peak heap above the file itself.
fn refused(data: Vec<u8>) -> (ProbeError, u64, usize) {
    let src = Counting::new(data);
    let base = vod_testkit::start_peak();
    let started = Instant::now();
    let err = probe(&src).expect_err("refused");
    let peak = vod_testkit::peak_since(base);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{err}: {:?}",
        started.elapsed()
    );
    (err, src.reads.load(Ordering::Relaxed), peak)
}

/// Memory a probe may use on any of these files (their `moov`s are tiny; the cache holds 4 blocks of 1 MiB).
const BOUND: usize = 16 << 20;

#[test]
fn every_hostile_file_is_refused_quickly_reading_little_in_bounded_memory() {
    for f in vod_media::testkit::hostile_corpus() {
        let size = f.bytes.len();
        let (err, reads, peak) = refused(f.bytes);
        println!("{}: {err} ({reads} reads, peak heap {peak} B)", f.name);
        assert!(err.to_string().contains(f.reason), "{}: {err}", f.name);
        assert!(
            reads <= 16 + (size as u64 >> 20),
            "{}: {reads} reads for {size} bytes",
            f.name
        );
        assert!(peak < BOUND, "{}: peak heap {peak} B", f.name);
    }
}

/// 200 `free` boxes of 1 MiB after an `ftyp`, made up as they are read (nothing held), each read taking 20 ms.
struct SlowSpacedBoxes;

const SPACING: u64 = (1 << 20) + 8;

impl ReadAt for SlowSpacedBoxes {
    fn size(&self) -> u64 {
        16 + 200 * SPACING
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(20));
        let end = (offset + len as u64).min(self.size());
        Ok((offset..end)
            .map(|at| {
                if at < 16 {
                    return b"\0\0\0\x10ftypisom\0\0\x02\0"[at as usize];
                }
                let (within, header) = ((at - 16) % SPACING, SPACING.to_be_bytes());
                match within {
                    0..=3 => header[4 + within as usize],
                    4..=7 => b"free"[within as usize - 4],
                    _ => 0,
                }
            })
            .collect())
    }
}

#[test]
fn a_slow_source_is_refused_within_the_time_budget() {
    // Box headers a block apart on a source that answers each read in 20 ms: walking them all would take 4 s.
    let started = Instant::now();
    let err = probe_within(&SlowSpacedBoxes, Duration::from_millis(500)).expect_err("refused");
    assert!(matches!(err, ProbeError::TimeBudget(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
