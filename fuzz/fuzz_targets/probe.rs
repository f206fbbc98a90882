// Checks the media probe (vod_media::probe_within) on arbitrary bytes: an error, never a panic, a hang or unbounded memory.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

#[path = "../harness/probe.rs"]
mod harness;

/// Largest single allocation allowed (as `-malloc_limit_mb=256`, which needs a sanitizer's malloc hooks to act; this
/// build has none, so the limit is enforced here): a larger request aborts, and libFuzzer keeps the input.
const MALLOC_LIMIT: usize = 256 << 20;

struct Limited;

unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            over_limit(layout.size());
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            over_limit(layout.size());
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MALLOC_LIMIT {
            over_limit(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn over_limit(size: usize) -> ! {
    // No allocation here: write the message with a fixed buffer.
    let msg = b"==probe== out-of-memory (malloc limit): one allocation over 256 MiB\n";
    unsafe { libc_write(2, msg.as_ptr(), msg.len()) };
    let _ = size;
    std::process::abort()
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
}

#[global_allocator]
static ALLOC: Limited = Limited;

/// Panic locations in third-party demuxers (mp4parse, matroska-demuxer, symphonia, y4m) already reported.
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fuzz_target!(
    init: {
        // The probe runs each third-party demuxer under `catch_unwind` (`vod_media::probe::guarded`) and refuses the
        // file as corrupt: such a panic is handled, so it is reported once per location and not treated as a
        // finding. A panic anywhere else (our own code) goes to libFuzzer's hook, which aborts: a finding.
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_string()).unwrap_or_default();
            if file.contains("/.cargo/registry/") || file.contains("/cargo/registry/") {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
                if seen.get_or_insert_with(HashSet::new).insert(at.clone()) {
                    eprintln!("==probe== third-party demuxer panic caught by the probe's guard at {at}: {info}");
                }
            } else {
                libfuzzer_hook(info);
            }
        }));
    },
    |data: &[u8]| harness::run(data)
);
