//! The fuzz corpora of the packaging stages as ordinary tests: every seed of `fuzz/corpus/<target>/` and every
//! minimised finding of `tests/fuzz_regressions/<target>/` goes through the same harness as the cargo-fuzz target
//! (`fuzz/harness/<target>.rs`) — the range planners, the URL grammar, segment encryption on arbitrary fragments and
//! the AV1/H.264 parsers: errors, never a panic, and the plans' invariants hold.
use std::path::Path;

#[path = "../../../fuzz/harness/av1_avc.rs"]
mod av1_avc;
#[path = "../../../fuzz/harness/encrypt.rs"]
mod encrypt;
#[path = "../../../fuzz/harness/ranges.rs"]
mod ranges;
#[path = "../../../fuzz/harness/url.rs"]
mod url;

fn replay(target: &str, run: fn(&[u8])) {
    let files = vod_testkit::fuzz_inputs(Path::new(env!("CARGO_MANIFEST_DIR")), target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is missing");
    for f in files {
        let data = std::fs::read(&f).expect("read corpus file");
        println!("{}", f.display());
        run(&data);
    }
}

#[test]
fn ranges_corpus_and_findings_replay() {
    replay("ranges", ranges::run);
}

#[test]
fn url_corpus_and_findings_replay() {
    replay("url", url::run);
}

#[test]
fn encrypt_corpus_and_findings_replay() {
    replay("encrypt", encrypt::run);
}

#[test]
fn av1_avc_corpus_and_findings_replay() {
    replay("av1_avc", av1_avc::run);
}
