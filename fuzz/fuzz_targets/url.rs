// Checks the streaming URL grammar (vod_package::url::parse) on arbitrary paths and queries: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/url.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
