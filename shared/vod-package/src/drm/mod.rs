//! DRM systems, one file each: what a system puts in init segments (`pssh`), in a DASH MPD (`ContentProtection`)
//! and in an HLS playlist (`EXT-X-KEY`), and how it names itself. A delivery policy names systems by
//! [`DrmId`]; [`system`] is the registry. Adding a system: a file here implementing [`DrmSystem`], its line in
//! [`system`], and its `DrmId` variant (with the policy rules it follows) in `vod_domain::protection`.
mod clearkey;
mod fairplay;
mod playready;
mod widevine;

pub use vod_domain::protection::{Drm, DrmId};

use crate::dash::DashDrm;
use crate::encrypt::Scheme;

/// One DRM system's signalling.
pub trait DrmSystem: Sync {
    fn id(&self) -> DrmId;
    /// Its 16-byte system id (`pssh`, DASH `urn:uuid:`, HLS `KEYFORMAT`).
    fn system_id(&self) -> [u8; 16];
    /// Its `pssh` box for content protected with `scheme` under `kids`, if it has one.
    fn pssh(&self, kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> Option<Vec<u8>>;
    /// The `value` of its DASH `ContentProtection` element.
    fn dash_name(&self) -> &'static str;
    /// Its DASH `ContentProtection` element (by default: `urn:uuid:<system id>` with its `pssh`).
    fn dash(&self, pssh: Option<&[u8]>) -> Option<DashDrm> {
        Some(DashDrm {
            system_id: uuid_string(&self.system_id()),
            value: self.dash_name().into(),
            pssh_b64: pssh.map(openssl::base64::encode_block),
        })
    }
    /// Its HLS `EXT-X-KEY` tag for fMP4 segments encrypted with `method` (`SAMPLE-AES-CTR` for cenc, `SAMPLE-AES`
    /// for cbcs). By default the system id as `KEYFORMAT` and its `pssh` as a data URI.
    fn hls_key(&self, method: &str, kid: &[u8; 16], pssh: Option<&[u8]>, _license_url: Option<&str>) -> Option<String> {
        let pssh = pssh?;
        Some(format!(
            "#EXT-X-KEY:METHOD={method},KEYFORMAT=\"urn:uuid:{}\",KEYFORMATVERSIONS=\"1\",\
             URI=\"data:text/plain;base64,{}\",KEYID=0x{}",
            uuid_string(&self.system_id()),
            openssl::base64::encode_block(pssh),
            hex(kid)
        ))
    }
}

/// The registry: the implementation of each system a policy may name.
pub fn system(id: DrmId) -> &'static dyn DrmSystem {
    match id {
        DrmId::ClearKey => &clearkey::ClearKey,
        DrmId::Widevine => &widevine::Widevine,
        DrmId::PlayReady => &playready::PlayReady,
        DrmId::FairPlay => &fairplay::FairPlay,
    }
}

/// A system of a policy, ready to signal: the system, its licence service and its `pssh` box (if it has one).
pub struct Signal {
    pub system: &'static dyn DrmSystem,
    pub license_url: Option<String>,
    pub pssh: Option<Vec<u8>>,
}

impl Signal {
    /// The signalling of `drm` (a policy's systems) for content protected with `scheme` under `kid`.
    pub fn of(drm: &[Drm], kid: [u8; 16], scheme: Scheme) -> Vec<Signal> {
        drm.iter()
            .map(|d| {
                let system = system(d.system);
                Signal {
                    system,
                    license_url: d.license_url.clone(),
                    pssh: system.pssh(&[kid], d.license_url.as_deref(), scheme),
                }
            })
            .collect()
    }

    pub fn hls_key(&self, method: &str, kid: &[u8; 16]) -> Option<String> {
        self.system
            .hls_key(method, kid, self.pssh.as_deref(), self.license_url.as_deref())
    }

    pub fn dash(&self) -> Option<DashDrm> {
        self.system.dash(self.pssh.as_deref())
    }
}

/// A 16-byte id as a hyphenated UUID string.
pub fn uuid_string(b: &[u8; 16]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `pssh` box (version 1 lists `kids`), as CENC defines it.
fn pssh_box(system_id: [u8; 16], version: u8, kids: &[[u8; 16]], data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(24 + 16 * kids.len() + data.len());
    body.extend_from_slice(&system_id);
    if version == 1 {
        body.extend_from_slice(&(kids.len() as u32).to_be_bytes());
        for kid in kids {
            body.extend_from_slice(kid);
        }
    }
    body.extend_from_slice(&(data.len() as u32).to_be_bytes());
    body.extend_from_slice(data);
    crate::encrypt::full_box(b"pssh", version, 0, &body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const KID: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ];

    pub fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn system_ids_and_registry() {
        let ids = [
            (DrmId::ClearKey, "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"),
            (DrmId::Widevine, "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"),
            (DrmId::PlayReady, "9a04f079-9840-4286-ab92-e65be0885f95"),
            (DrmId::FairPlay, "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"),
        ];
        for (id, uuid) in ids {
            assert_eq!(system(id).id(), id);
            assert_eq!(uuid_string(&system(id).system_id()), uuid);
        }
    }

    #[test]
    fn signals_of_a_policy() {
        let drm = vec![
            Drm {
                system: DrmId::ClearKey,
                license_url: None,
            },
            Drm {
                system: DrmId::Widevine,
                license_url: Some("https://wv.example/lic".into()),
            },
        ];
        let s = Signal::of(&drm, KID, Scheme::Cenc);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.pssh.is_some()));
        let tags: Vec<String> = s.iter().filter_map(|x| x.hls_key("SAMPLE-AES-CTR", &KID)).collect();
        assert_eq!(tags.len(), 2);
        assert!(tags[1].contains("KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\""));
        assert!(tags[1].ends_with("KEYID=0x00112233445566778899aabbccddeeff"));
        let dash: Vec<DashDrm> = s.iter().filter_map(Signal::dash).collect();
        assert_eq!(
            dash[0].system_id, "e2719d58-a985-b3c9-781a-b030af78d30e",
            "DASH-IF Clear Key"
        );
        assert_eq!(dash[1].value, "Widevine");
    }
}
