//! Widevine: licences from the customer's Widevine service (the player is configured with its URL). Its `pssh`
//! is version 0 whose data is a WidevinePsshData protobuf: the key ids and, for cbcs, the protection scheme.
use super::{pssh_box, DrmId, DrmSystem};
use crate::encrypt::Scheme;

pub struct Widevine;

impl DrmSystem for Widevine {
    fn id(&self) -> DrmId {
        DrmId::Widevine
    }
    fn system_id(&self) -> [u8; 16] {
        // edef8ba9-79d6-4ace-a3c8-27dcd51d21ed
        [
            0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed,
        ]
    }
    fn pssh(&self, kids: &[[u8; 16]], _license_url: Option<&str>, scheme: Scheme) -> Option<Vec<u8>> {
        Some(pssh_box(self.system_id(), 0, &[], &pssh_data(kids, scheme)))
    }
    fn dash_name(&self) -> &'static str {
        "Widevine"
    }
}

/// WidevinePsshData: `repeated bytes key_ids = 2` and, for cbcs, `optional uint32 protection_scheme = 9`.
// Hand-written: two protobuf fields do not warrant a protobuf code generator.
fn pssh_data(kids: &[[u8; 16]], scheme: Scheme) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 * kids.len() + 6);
    for kid in kids {
        out.push((2 << 3) | 2); // field 2, length-delimited
        out.push(16);
        out.extend_from_slice(kid);
    }
    if scheme == Scheme::Cbcs {
        out.push(9 << 3); // field 9, varint
        let mut v = u32::from_be_bytes(*b"cbcs");
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{be32, KID};
    use super::*;

    #[test]
    fn widevine_pssh_carries_key_ids_in_protobuf() {
        let p = Widevine.pssh(&[KID], None, Scheme::Cenc).unwrap();
        assert_eq!(&p[4..8], b"pssh");
        assert_eq!(p[8], 0, "version 0");
        assert_eq!(p[12..28], Widevine.system_id());
        let data_len = be32(&p, 28) as usize;
        let data = &p[32..];
        assert_eq!(data.len(), data_len);
        let mut expected = vec![0x12, 0x10];
        expected.extend_from_slice(&KID);
        assert_eq!(data, expected, "field 2 (key_ids), 16 bytes");
        let cbcs = Widevine.pssh(&[KID, KID], None, Scheme::Cbcs).unwrap();
        let data = &cbcs[32..];
        assert_eq!(data.len(), 18 * 2 + 6);
        assert_eq!(data[36..], [0x48, 0xf3, 0xc6, 0x89, 0x9b, 0x06], "field 9 = 'cbcs'");
    }
}
