// Checks the range planners (MP4/Matroska byte-range plans, HTTP Range, progressive map): no panic, plans within the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/ranges.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
