//! Fuzz harness of segment encryption on arbitrary fragments (`vod_package::encrypt`): any init segment and any
//! fragment, under `cenc` and `cbcs`, give protected bytes or an `EncryptError`, never a panic; HLS AES-128 pads any
//! bytes to whole blocks. The first byte picks the scheme and whether the init segment comes from the input (a
//! big-endian u16 length, then the init, then the fragment) or is a clear CMAF init of our own muxer (Opus, AV1,
//! H.264) in front of an arbitrary fragment. Shared by `fuzz_targets/encrypt.rs` and vod-package's
//! `tests/fuzz_corpus.rs`.

use vod_cmaf::{init_segment, CodecConfig, TrackConfig};
use vod_package::encrypt::{aes128_cbc, protect_init, Protector, Scheme};

const KEY: [u8; 16] = *b"0123456789abcdef";
const KID: [u8; 16] = *b"fuzz-key-id-0001";
const IV: [u8; 16] = [7; 16];

/// SPS and PPS of a 64x64 x264 stream (Annex B), for the H.264 init.
pub const AVC_HEADERS: &[u8] = &[
    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0a, 0xda, 0x10, 0x9b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03,
    0x03, 0x20, 0xf1, 0x22, 0x6a, 0, 0, 0, 1, 0x68, 0xce, 0x0f, 0xc8,
];

/// A clear init segment of our own muxer: 0 Opus, 1 AV1 (sequence header in the samples), 2 H.264.
pub fn own_init(kind: u8) -> Option<Vec<u8>> {
    let codec = match kind % 3 {
        0 => CodecConfig::Opus {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48_000,
        },
        1 => CodecConfig::Av1 {
            width: 64,
            height: 64,
            av1c: vec![0x81, 0x00, 0x0c, 0x00],
            colour: None,
        },
        _ => CodecConfig::H264 {
            width: 64,
            height: 64,
            avcc: vod_cmaf::avc::avcc_from_annex_b(AVC_HEADERS).ok()?,
        },
    };
    let timescale = if kind.is_multiple_of(3) { 48_000 } else { 90_000 };
    init_segment(&TrackConfig {
        track_id: 1,
        timescale,
        codec,
        language: "und".into(),
    })
    .ok()
}

fn pssh() -> Vec<u8> {
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&[0x10; 16]);
    body.extend_from_slice(&0u32.to_be_bytes());
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(b"pssh");
    out.extend_from_slice(&body);
    out
}

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let scheme = if selector & 1 == 0 { Scheme::Cenc } else { Scheme::Cbcs };

    // HLS AES-128: PKCS#7 always adds 1..=16 bytes.
    let whole = aes128_cbc(&KEY, &IV, rest).expect("AES-128-CBC of any bytes");
    assert_eq!(whole.len(), rest.len() / 16 * 16 + 16);

    let own;
    let (init, fragment): (&[u8], &[u8]) = if selector & 2 == 0 {
        if rest.len() < 2 {
            return;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        (&rest[2..2 + len], &rest[2 + len..])
    } else {
        let Some(init) = own_init(selector >> 2) else {
            return;
        };
        own = init;
        (&own, rest)
    };

    if let Ok(protected) = protect_init(init, scheme, &KID, &[pssh()]) {
        assert!(protected.len() > init.len(), "protect_init did not grow the init");
    }
    if let Ok(protector) = Protector::new(init, scheme, &KID) {
        let _ = protector.protect(fragment.to_vec(), &KEY, u32::from(selector));
    }
}
