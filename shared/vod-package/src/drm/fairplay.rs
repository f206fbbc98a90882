//! FairPlay Streaming: for cbcs HLS only. No `pssh` and no DASH signalling: the playlist names a key with an
//! `skd://` URI (the key id, or the customer's key server URL with the key id) in Apple's key format, and the
//! player asks the customer's FairPlay service for the licence.
use super::{hex, DrmId, DrmSystem};
use crate::dash::DashDrm;
use crate::encrypt::Scheme;

pub struct FairPlay;

impl DrmSystem for FairPlay {
    fn id(&self) -> DrmId {
        DrmId::FairPlay
    }
    fn system_id(&self) -> [u8; 16] {
        // 94ce86fb-07ff-4f43-adb8-93d2fa968ca2
        [
            0x94, 0xce, 0x86, 0xfb, 0x07, 0xff, 0x4f, 0x43, 0xad, 0xb8, 0x93, 0xd2, 0xfa, 0x96, 0x8c, 0xa2,
        ]
    }
    fn pssh(&self, _kids: &[[u8; 16]], _license_url: Option<&str>, _scheme: Scheme) -> Option<Vec<u8>> {
        None
    }
    fn dash_name(&self) -> &'static str {
        "FairPlay"
    }
    fn dash(&self, _pssh: Option<&[u8]>) -> Option<DashDrm> {
        None
    }
    fn hls_key(&self, method: &str, kid: &[u8; 16], _pssh: Option<&[u8]>, license_url: Option<&str>) -> Option<String> {
        if method != "SAMPLE-AES" {
            return None; // FairPlay decrypts cbcs only
        }
        let uri = match license_url.and_then(|u| u.split_once("://").map(|(_, rest)| rest)) {
            Some(rest) => format!("skd://{}?kid={}", rest.trim_end_matches('/'), hex(kid)),
            None => format!("skd://{}", hex(kid)),
        };
        Some(format!(
            "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"{uri}\",KEYFORMAT=\"com.apple.streamingkeydelivery\",\
             KEYFORMATVERSIONS=\"1\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::KID;
    use super::*;

    #[test]
    fn fairplay_is_an_skd_key_for_cbcs_only() {
        assert!(FairPlay.pssh(&[KID], None, Scheme::Cbcs).is_none());
        assert!(FairPlay.dash(None).is_none());
        assert!(FairPlay.hls_key("SAMPLE-AES-CTR", &KID, None, None).is_none());
        assert_eq!(
            FairPlay.hls_key("SAMPLE-AES", &KID, None, None).unwrap(),
            "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://00112233445566778899aabbccddeeff\",\
             KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\""
        );
        let with_server = FairPlay
            .hls_key("SAMPLE-AES", &KID, None, Some("https://fps.example/ksm/"))
            .unwrap();
        assert!(with_server.contains("URI=\"skd://fps.example/ksm?kid=00112233445566778899aabbccddeeff\""));
    }
}
