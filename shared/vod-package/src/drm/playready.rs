//! PlayReady: licences from the customer's PlayReady service, whose URL goes into the header as LA_URL. Its
//! `pssh` is version 0 whose data is a PlayReady Object holding a WRMHEADER: 4.0.0.0 for one key id (AESCTR),
//! 4.2.0.0 for several, 4.3.0.0 with AESCBC for cbcs; key ids in the byte order of a little-endian GUID.
use super::{pssh_box, DrmId, DrmSystem};
use crate::encrypt::Scheme;

pub struct PlayReady;

impl DrmSystem for PlayReady {
    fn id(&self) -> DrmId {
        DrmId::PlayReady
    }
    fn system_id(&self) -> [u8; 16] {
        // 9a04f079-9840-4286-ab92-e65be0885f95
        [
            0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95,
        ]
    }
    fn pssh(&self, kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> Option<Vec<u8>> {
        Some(pssh_box(self.system_id(), 0, &[], &object(kids, license_url, scheme)))
    }
    fn dash_name(&self) -> &'static str {
        "MSPR 2.0"
    }
}

/// A key id in the byte order of a little-endian GUID (PlayReady's KID), base64.
fn kid_b64(kid: &[u8; 16]) -> String {
    let mut guid = *kid;
    guid[0..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    openssl::base64::encode_block(&guid)
}

fn xml_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The WRMHEADER XML for `kids`.
fn wrm_header(kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> String {
    const NS: &str = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader";
    let la_url = license_url
        .map(|u| format!("<LA_URL>{}</LA_URL>", xml_escape(u)))
        .unwrap_or_default();
    match (kids, scheme) {
        ([kid], Scheme::Cenc) => format!(
            "<WRMHEADER xmlns=\"{NS}\" version=\"4.0.0.0\"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN>\
             <ALGID>AESCTR</ALGID></PROTECTINFO><KID>{}</KID>{la_url}</DATA></WRMHEADER>",
            kid_b64(kid)
        ),
        _ => {
            let (version, algid) = match scheme {
                Scheme::Cenc => ("4.2.0.0", "AESCTR"),
                Scheme::Cbcs => ("4.3.0.0", "AESCBC"),
            };
            let kids: String = kids
                .iter()
                .map(|kid| format!("<KID ALGID=\"{algid}\" VALUE=\"{}\"></KID>", kid_b64(kid)))
                .collect();
            format!(
                "<WRMHEADER xmlns=\"{NS}\" version=\"{version}\"><DATA><PROTECTINFO><KIDS>{kids}</KIDS>\
                 </PROTECTINFO>{la_url}</DATA></WRMHEADER>"
            )
        }
    }
}

/// PlayReady Object: little-endian length, record count 1, record type 1 (rights management header), UTF-16LE XML.
fn object(kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> Vec<u8> {
    let xml: Vec<u8> = wrm_header(kids, license_url, scheme)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut out = Vec::with_capacity(10 + xml.len());
    out.extend_from_slice(&((10 + xml.len()) as u32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(xml.len() as u16).to_le_bytes());
    out.extend_from_slice(&xml);
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{be32, KID};
    use super::*;

    fn playready_xml(p: &[u8]) -> String {
        assert_eq!(p[8], 0, "version 0");
        assert_eq!(p[12..28], PlayReady.system_id());
        let data = &p[32..];
        assert_eq!(be32(p, 28) as usize, data.len());
        let pro_len = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        assert_eq!(pro_len, data.len(), "PlayReady Object length");
        assert_eq!(u16::from_le_bytes([data[4], data[5]]), 1, "one record");
        assert_eq!(u16::from_le_bytes([data[6], data[7]]), 1, "rights management header");
        let len = u16::from_le_bytes([data[8], data[9]]) as usize;
        assert_eq!(len, data.len() - 10);
        let utf16: Vec<u16> = data[10..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16(&utf16).unwrap()
    }

    #[test]
    fn playready_pssh_has_a_wrm_header() {
        let pssh = |kids: &[[u8; 16]], url, scheme| PlayReady.pssh(kids, url, scheme).unwrap();
        let xml = playready_xml(&pssh(&[KID], Some("https://lic.example/pr?a=1&b=2"), Scheme::Cenc));
        assert!(xml.starts_with(
            "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.0.0.0\">"
        ));
        // KID 00112233-4455-6677-8899-aabbccddeeff in GUID (little-endian) byte order, base64.
        assert!(xml.contains("<KID>MyIRAFVEd2aImaq7zN3u/w==</KID>"), "{xml}");
        assert!(xml.contains("<KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID>"));
        assert!(
            xml.contains("<LA_URL>https://lic.example/pr?a=1&amp;b=2</LA_URL>"),
            "{xml}"
        );
        assert!(xml.ends_with("</DATA></WRMHEADER>"));
        let two = playready_xml(&pssh(&[KID, KID], None, Scheme::Cenc));
        assert!(two.contains("version=\"4.2.0.0\""));
        assert_eq!(
            two.matches("<KID ALGID=\"AESCTR\" VALUE=\"MyIRAFVEd2aImaq7zN3u/w==\"></KID>")
                .count(),
            2
        );
        assert!(!two.contains("LA_URL"));
        let cbcs = playready_xml(&pssh(&[KID], None, Scheme::Cbcs));
        assert!(cbcs.contains("version=\"4.3.0.0\"") && cbcs.contains("ALGID=\"AESCBC\""));
    }
}
