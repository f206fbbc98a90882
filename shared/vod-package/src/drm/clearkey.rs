//! W3C Clear Key: licences from this platform's key service. Its `pssh` is the W3C common format (version 1, the
//! key ids, no data); DASH names it with DASH-IF's Clear Key scheme id and no `cenc:pssh` (dash.js hands a CDM
//! such initData it refuses; the init segment carries it).
use super::{pssh_box, uuid_string, DrmId, DrmSystem};
use crate::dash::DashDrm;
use crate::encrypt::Scheme;

pub struct ClearKey;

impl DrmSystem for ClearKey {
    fn id(&self) -> DrmId {
        DrmId::ClearKey
    }
    fn system_id(&self) -> [u8; 16] {
        // 1077efec-c0b2-4d02-ace3-3c1e52e2fb4b (W3C "cenc" Initialization Data Format)
        [
            0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
        ]
    }
    fn pssh(&self, kids: &[[u8; 16]], _license_url: Option<&str>, _scheme: Scheme) -> Option<Vec<u8>> {
        Some(pssh_box(self.system_id(), 1, kids, &[]))
    }
    fn dash_name(&self) -> &'static str {
        "ClearKey1.0"
    }
    fn dash(&self, _pssh: Option<&[u8]>) -> Option<DashDrm> {
        // e2719d58-a985-b3c9-781a-b030af78d30e: DASH-IF's Clear Key scheme id.
        let dash_if = [
            0xe2, 0x71, 0x9d, 0x58, 0xa9, 0x85, 0xb3, 0xc9, 0x78, 0x1a, 0xb0, 0x30, 0xaf, 0x78, 0xd3, 0x0e,
        ];
        Some(DashDrm {
            system_id: uuid_string(&dash_if),
            value: self.dash_name().into(),
            pssh_b64: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{be32, KID};
    use super::*;

    #[test]
    fn clearkey_pssh_is_version_1_with_kids() {
        let other = [0xabu8; 16];
        let p = ClearKey
            .pssh(&[KID, other], Some("https://ignored"), Scheme::Cenc)
            .unwrap();
        assert_eq!(p.len(), 12 + 16 + 4 + 32 + 4);
        assert_eq!(be32(&p, 0), p.len() as u32);
        assert_eq!(&p[4..8], b"pssh");
        assert_eq!(p[8], 1, "version 1");
        assert_eq!(&p[9..12], &[0, 0, 0]);
        assert_eq!(p[12..28], ClearKey.system_id());
        assert_eq!(be32(&p, 28), 2, "KID_count");
        assert_eq!(p[32..48], KID);
        assert_eq!(p[48..64], other);
        assert_eq!(be32(&p, 64), 0, "no data");
    }
}
