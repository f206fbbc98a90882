//! Fuzz target: `probe` must return Ok or Err on any input, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = data.to_vec();
    let _ = vod_media::probe(&src);
});
