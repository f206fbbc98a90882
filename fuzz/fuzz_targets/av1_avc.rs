// Checks the AV1 (OBU, av1C, sequence/frame headers, tiles) and H.264 (NAL, avcC) parsers on arbitrary bytes: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/av1_avc.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
