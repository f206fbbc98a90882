// Checks segment encryption (cenc, cbcs, AES-128) on arbitrary init segments and fragments: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/encrypt.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
