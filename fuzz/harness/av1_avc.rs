//! Fuzz harness of the AV1 and H.264 bitstream parsers: vod-cmaf's OBU splitter, leb128, temporal-delimiter
//! stripping, `av1C` and `avcC` records, Annex B / length-prefixed NAL walks (with their round trip), and
//! vod-package's AV1 sequence/frame-header and tile parser and H.264 subsample walk, reached through the encryptor
//! (an `av1C` whose configOBUs are the first part of the input and one sample of the rest; an H.264 sample of the
//! input). Never a panic. Shared by `fuzz_targets/av1_avc.rs` and vod-package's `tests/fuzz_corpus.rs`.

use vod_cmaf::{av1, avc, codec, init_segment, media_segment, CodecConfig, Sample, TrackConfig};
use vod_package::encrypt::{Protector, Scheme};

const KEY: [u8; 16] = *b"0123456789abcdef";
const KID: [u8; 16] = *b"fuzz-key-id-0002";

/// SPS and PPS of a 64x64 x264 stream (Annex B).
const AVC_HEADERS: &[u8] = &[
    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0a, 0xda, 0x10, 0x9b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03,
    0x03, 0x20, 0xf1, 0x22, 0x6a, 0, 0, 0, 1, 0x68, 0xce, 0x0f, 0xc8,
];

pub fn run(data: &[u8]) {
    // vod-cmaf's AV1 helpers.
    let _ = av1::read_leb128(data);
    if let Ok(obus) = av1::obus(data) {
        for o in &obus {
            assert!(
                o.header.start <= o.header.end && o.header.end <= o.payload.start,
                "{o:?}"
            );
            assert!(o.payload.start <= o.payload.end && o.payload.end <= data.len(), "{o:?}");
        }
    }
    assert!(av1::strip_temporal_delimiters(data).len() <= data.len());
    if let Ok(record) = codec::parse_av1c(data) {
        assert!(matches!(codec::av1_bit_depth(&record), 8 | 10 | 12));
    }

    // vod-cmaf's H.264 helpers.
    for unit in avc::annex_b_units(data) {
        assert!(!unit.is_empty());
        let _ = avc::nal_type(unit);
    }
    let prefixed = avc::to_length_prefixed(data);
    avc::length_prefixed_units(&prefixed).expect("to_length_prefixed output walks back");
    let _ = avc::length_prefixed_units(data);
    if let Ok(record) = avc::parse_avcc(data) {
        let _ = avc::codec_string(&record);
    }
    if let Ok(avcc) = avc::avcc_from_annex_b(data) {
        avc::parse_avcc(&avcc).expect("our own avcC parses back");
    }

    // vod-package's AV1 parser: configOBUs = data[1..1 + data[0]], one key-frame sample = the rest.
    if let Some((&n, rest)) = data.split_first() {
        let n = usize::from(n).min(rest.len());
        let (config_obus, sample) = rest.split_at(n);
        let mut av1c = vec![0x81, 0x00, 0x0c, 0x00];
        av1c.extend_from_slice(config_obus);
        protect_one(
            CodecConfig::Av1 {
                width: 64,
                height: 64,
                av1c,
                colour: None,
            },
            sample,
        );
    }
    // vod-package's H.264 subsample walk on the input as one sample.
    if let Ok(avcc) = avc::avcc_from_annex_b(AVC_HEADERS) {
        protect_one(
            CodecConfig::H264 {
                width: 64,
                height: 64,
                avcc,
            },
            data,
        );
    }
}

fn protect_one(codec: CodecConfig, sample: &[u8]) {
    let track = TrackConfig {
        track_id: 1,
        timescale: 90_000,
        codec,
        language: "und".into(),
    };
    let Ok(init) = init_segment(&track) else {
        return;
    };
    let samples = [Sample {
        data: sample.to_vec(),
        duration: 3000,
        is_sync: true,
        composition_offset: 0,
    }];
    let Ok(segment) = media_segment(&track, 1, 0, &samples) else {
        return;
    };
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        if let Ok(p) = Protector::new(&init, scheme, &KID) {
            let _ = p.protect(segment.clone(), &KEY, 1);
        }
    }
}
