//! The fuzz corpus of the media probe as an ordinary test: every seed of `fuzz/corpus/probe/` and every minimised
//! finding of `tests/fuzz_regressions/probe/` goes through the same harness as the cargo-fuzz target
//! (`fuzz/harness/probe.rs`): a `MediaInfo` or a `ProbeError`, never a panic. And the findings of `fuzz/run.sh`
//! against this crate, each refused quickly in bounded memory (measured like `tests/hostile.rs`).
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vod_media::{mp4_needed_ranges, probe, Need, ProbeError};

#[global_allocator]
static A: vod_testkit::PeakAlloc = vod_testkit::PeakAlloc;

/// The peak-heap measure is process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Heap any of these inputs may cost (each is under 4 KB; the probe's cache holds 4 blocks of 1 MiB).
const BOUND: usize = 16 << 20;

fn regression(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions")
            .join(name),
    )
    .expect("read regression input")
}

/// Runs `f`, asserting it is quick and returns its peak heap.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = vod_testkit::start_peak();
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    (out, vod_testkit::peak_since(base))
}

#[path = "../../../fuzz/harness/probe.rs"]
mod harness;

fn inputs(target: &str) -> Vec<PathBuf> {
    vod_testkit::fuzz_inputs(Path::new(env!("CARGO_MANIFEST_DIR")), target)
}

#[test]
fn probe_corpus_and_findings_replay() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = inputs("probe");
    assert!(!files.is_empty(), "fuzz/corpus/probe is missing");
    for f in files {
        let data = std::fs::read(&f).expect("read corpus file");
        println!("{}", f.display());
        harness::run(&data);
    }
}

/// fuzz findings (probe, malloc limit): mp4parse reserves what a box claims before reading it —
/// - `hdlr-claims-4gib.mp4`: an `hdlr` inside a 0x17d-byte `mdia` claiming 0xfcffffd2 bytes (a 4 GiB reservation);
/// - `stsd-counts-4g-entries.mp4`: an `stsd` of 0xaf bytes counting 0x53180001 sample entries (a reservation of
///   1.4 G sample entries);
/// - `ilst-data-claims-too-much.mp4`: a `data` box in a `udta/meta/ilst` item claiming 0x59555635 bytes;
/// - `elst-counts-too-many-edits.mp4`: an `elst` counting far more edits than its box holds.
///
/// Now every box inside the containers mp4parse walks must fit in its parent, and an `stsd`/`dref`/`elst` count must
/// fit its box.
#[test]
fn finding_boxes_claiming_more_than_they_hold_are_refused_in_bounded_memory() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for name in [
        "probe/hdlr-claims-4gib.mp4",
        "probe/stsd-counts-4g-entries.mp4",
        "probe/ilst-data-claims-too-much.mp4",
        "probe/elst-counts-too-many-edits.mp4",
    ] {
        let data = regression(name);
        let (result, peak) = measured(|| probe(&data));
        let err = result.expect_err("refused");
        assert!(matches!(err, ProbeError::Corrupt(_)), "{name}: {err}");
        assert!(peak < BOUND, "{name}: peak heap {peak} B");
    }
}

/// fuzz finding (ranges, RSS limit): the range planner built mp4parse's sample table from tables claiming far more
/// samples than the file holds (the probe checks them first; the planner did not). Now it runs the same checks.
#[test]
fn finding_the_mp4_range_planner_checks_sample_tables_first() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = regression("ranges/sample-table-bomb.mp4");
    let need = Need::Video {
        start_secs: f64::from(0xfe00_0000u32) / 1000.0,
        end_secs: f64::from(0xfe00_0000u32) / 1000.0 + 0.04,
    };
    for need in [need, Need::Audio] {
        let (result, peak) = measured(|| mp4_needed_ranges(&data, need));
        let err = result.expect_err("refused");
        assert!(matches!(err, ProbeError::Corrupt(_)), "{err}");
        assert!(peak < BOUND, "peak heap {peak} B");
    }
}

/// fuzz finding (probe, a panic in our own code): a `pasp` with vSpacing 0xdf000001 overflowed `1000 * v` (u32) in
/// the pixel-aspect sanity filter — a panic where overflow checks are on (the probe's guard turned it into "mp4
/// parser failed"), a wrapped comparison in release builds. Now compared in u64: the aspect is refused as absurd.
#[test]
fn finding_a_huge_pasp_spacing_does_not_overflow() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = regression("probe/pasp-overflows-u32.mp4");
    match probe(&data) {
        Ok(info) => assert!(info.video.iter().all(|v| v.pixel_aspect.is_none()), "{info:?}"),
        Err(e) => assert!(!e.to_string().contains("parser failed"), "{e}"),
    }
}

/// fuzz finding (probe, timeout): a 205-byte WebM on which matroska-demuxer's SeekHead search never ends, reading
/// only cached bytes — so the probe's time budget, checked on reads of the source, never applied. Now the block
/// reader asks the source every 4096 reads, and the probe is refused when its budget is spent.
#[test]
fn finding_a_demuxer_looping_over_cached_bytes_is_stopped_by_the_time_budget() {
    let data = regression("probe/matroska-seek-head-loop.webm");
    let started = Instant::now();
    let result = vod_media::probe_within(&data, Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(result.is_err(), "{result:?}");
}
