//! A hostile corpus against the probe: each file is refused with a clear error, quickly, reading little and in
//! bounded memory — a million `free` boxes, sample-table bombs (one track or many), entry counts that lie about
//! their box, tables that disagree, chunks outside the file, deep nesting, a polyglot, a truncated file, and a
//! source that reads slowly (the wall-clock budget).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vod_media::{probe, probe_within, ProbeError, ReadAt};

/// Counts the heap in use and its peak (the probe's memory bound is checked on every file).
struct Peak;
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) };
        IN_USE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}
#[global_allocator]
static A: Peak = Peak;

/// A source that counts reads (and may be slow, as S3 is).
struct Counting {
    data: Vec<u8>,
    reads: AtomicU64,
    delay: Duration,
}

impl Counting {
    fn new(data: Vec<u8>) -> Self {
        Counting {
            data,
            reads: AtomicU64::new(0),
            delay: Duration::ZERO,
        }
    }
}

impl ReadAt for Counting {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.delay);
        self.data.read_at(offset, len)
    }
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full(kind: &[u8; 4], fields: &[u32]) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    for f in fields {
        body.extend_from_slice(&f.to_be_bytes());
    }
    bx(kind, &body)
}

fn ftyp() -> Vec<u8> {
    bx(b"ftyp", b"isom\0\0\x02\0isomiso2")
}

/// A file whose `moov` has `tracks` tracks with tables claiming `samples` samples of `size` bytes each, and an
/// `mdat` of `mdat` bytes.
fn bomb_with(tracks: usize, samples: u32, size: u32, mdat: usize) -> Vec<u8> {
    let stbl = [
        full(b"stts", &[1, samples, 1]),
        full(b"stsz", &[size, samples]),
        full(b"stsc", &[1, 1, samples, 1]),
        full(b"stco", &[1, 40]),
    ]
    .concat();
    let trak = bx(b"trak", &bx(b"mdia", &bx(b"minf", &bx(b"stbl", &stbl))));
    let mut file = ftyp();
    file.extend(bx(b"moov", &trak.repeat(tracks)));
    file.extend(bx(b"mdat", &vec![0u8; mdat]));
    file
}

fn bomb(tracks: usize, samples: u32, size: u32) -> Vec<u8> {
    bomb_with(tracks, samples, size, 64)
}

/// Probes `data`; returns the error, the reads made and the peak heap above the file itself.
fn refused(data: Vec<u8>) -> (ProbeError, u64, usize) {
    let src = Counting::new(data);
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let err = probe(&src).expect_err("refused");
    let peak = PEAK.load(Ordering::Relaxed) - base;
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
fn a_million_free_boxes_cost_a_few_reads() {
    let mut data = ftyp();
    for _ in 0..1_000_000 {
        data.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    }
    let (err, reads, peak) = refused(data);
    assert!(matches!(err, ProbeError::Corrupt(_)), "{err}");
    assert!(reads <= 16, "{reads} reads for 8 MB of box headers");
    assert!(peak < BOUND, "{peak} B");
    // More top-level boxes than any real file has: refused before they are all walked.
    let mut many = ftyp();
    for _ in 0..300_000 {
        many.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    }
    many.extend(bomb(1, 10, 1)[ftyp().len()..].to_vec());
    let (err, _, _) = refused(many);
    assert!(err.to_string().contains("too many top-level boxes"), "{err}");
}

#[test]
fn sample_table_bombs_are_refused_before_any_table_is_built() {
    // 2,000,000 samples of 1000 bytes claimed by a 300-byte file.
    let (err, _, peak) = refused(bomb(1, 2_000_000, 1000));
    assert!(err.to_string().contains("bytes of samples"), "{err}");
    assert!(peak < BOUND, "{peak} B");
    // Ten tracks of 2,000,000 one-byte samples (whose bytes the file holds): too many samples for one file.
    let (err, _, peak) = refused(bomb_with(10, 2_000_000, 1, 4_500_000));
    assert!(err.to_string().contains("more than 4000000 samples"), "{err}");
    assert!(peak < BOUND, "{peak} B");
    let (err, _, _) = refused(bomb(1, 3_000_000, 1));
    assert!(err.to_string().contains("claims 3000000 samples"), "{err}");
    // Sizes listed one by one: the list must be in the box.
    let (err, _, _) = refused(bomb(1, 2_000_000, 0));
    assert!(err.to_string().contains("claims 2000000 entries"), "{err}");
}

#[test]
fn tables_that_lie_about_their_boxes_or_disagree_are_refused() {
    let track = |stbl: Vec<u8>| {
        let mut f = ftyp();
        f.extend(bx(
            b"moov",
            &bx(b"trak", &bx(b"mdia", &bx(b"minf", &bx(b"stbl", &stbl)))),
        ));
        f.extend(bx(b"mdat", &[0u8; 64]));
        f
    };
    // An entry count far beyond the box.
    let (err, _, peak) = refused(track(full(b"stts", &[1_000_000_000, 1, 1])));
    assert!(err.to_string().contains("claims 1000000000 entries"), "{err}");
    assert!(peak < BOUND);
    // stts and stsz disagree.
    let stbl = [full(b"stts", &[1, 10, 1]), full(b"stsz", &[1, 9])].concat();
    assert!(refused(track(stbl)).0.to_string().contains("disagree"));
    // A chunk outside the file.
    let stbl = [
        full(b"stts", &[1, 1, 1]),
        full(b"stsz", &[1, 1]),
        full(b"stsc", &[1, 1, 1, 1]),
        full(b"stco", &[1, 1 << 30]),
    ]
    .concat();
    assert!(refused(track(stbl)).0.to_string().contains("past the end of the file"));
}

#[test]
fn deep_nesting_polyglots_and_cuts_are_errors() {
    // 20,000 nested boxes inside the moov.
    let mut nest = Vec::new();
    for _ in 0..20_000 {
        nest = bx(b"udta", &nest);
    }
    let mut deep = ftyp();
    deep.extend(bx(b"moov", &nest));
    let (err, _, peak) = refused(deep);
    assert!(matches!(err, ProbeError::Corrupt(_) | ProbeError::NoStreams), "{err}");
    assert!(peak < BOUND + (2 << 20) * 10, "{peak} B");
    // An HTML page behind an ftyp box (a polyglot): no moov.
    let mut poly = ftyp();
    poly.extend_from_slice(b"<html><script>alert(1)</script></html>");
    assert!(matches!(
        refused(poly).0,
        ProbeError::Truncated(_) | ProbeError::Corrupt(_)
    ));
    // A box that claims more than the file holds.
    let mut cut = bomb(1, 10, 1);
    cut.truncate(cut.len() - 20);
    assert!(matches!(refused(cut).0, ProbeError::Truncated(_)));
}

#[test]
fn a_slow_source_is_refused_within_the_time_budget() {
    // Box headers a block apart on a source that answers each read in 20 ms: walking them all would take 4 s.
    let mut data = ftyp();
    for _ in 0..200 {
        let mut free = ((1u32 << 20) + 8).to_be_bytes().to_vec();
        free.extend_from_slice(b"free");
        free.resize((1 << 20) + 8, 0);
        data.extend(free);
    }
    let mut src = Counting::new(data);
    src.delay = Duration::from_millis(20);
    let started = Instant::now();
    let err = probe_within(&src, Duration::from_millis(500)).expect_err("refused");
    assert!(matches!(err, ProbeError::TimeBudget(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
