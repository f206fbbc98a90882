//! Dynamic encryption of the stored CMAF renditions, as pure functions over bytes: Common Encryption
//! (ISO/IEC 23001-7, `cenc` and `cbcs`) of init and media segments, with AV1 subsample encryption as the
//! AV1-ISOBMFF binding requires and whole-sample encryption of Opus; `pssh` boxes for ClearKey, Widevine and
//! PlayReady; whole-segment AES-128-CBC for HLS `METHOD=AES-128`. Keys come from the caller; no I/O here.
//!
//! Boxes are walked by hand (every size checked against its parent) rather than decoded with mp4-atom, which has no
//! `sinf`/`tenc`/`pssh`/`encv` types and would rebuild, not splice, the boxes it does not know.

use std::ops::Range;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::sha::Sha256;

use crate::av1::Av1Parser;

/// Common Encryption scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// AES-128-CTR, 8-byte per-sample IVs, subsamples for video.
    Cenc,
    /// AES-128-CBC with a 16-byte constant IV: 1:9 pattern for video, whole-sample (full blocks) for audio.
    Cbcs,
}

/// A DRM system that gets a `pssh` box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DrmSystem {
    /// W3C Common PSSH box format (`org.w3.clearkey` reads its key ids).
    ClearKey,
    Widevine,
    PlayReady,
}

/// Why a segment could not be protected.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("malformed MP4: {0}")]
    Malformed(String),
    #[error("unsupported MP4: {0}")]
    Unsupported(String),
    #[error("AV1 sample {sample}: {reason}")]
    Av1 { sample: usize, reason: String },
    #[error("{0} does not fit its field")]
    Overflow(&'static str),
    #[error("crypto: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

type Result<T> = std::result::Result<T, EncryptError>;

fn malformed(what: impl Into<String>) -> EncryptError {
    EncryptError::Malformed(what.into())
}

fn unsupported(what: impl Into<String>) -> EncryptError {
    EncryptError::Unsupported(what.into())
}

/// The 16-byte system id of a DRM system.
pub fn system_id(s: DrmSystem) -> [u8; 16] {
    match s {
        // 1077efec-c0b2-4d02-ace3-3c1e52e2fb4b (W3C "cenc" Initialization Data Format)
        DrmSystem::ClearKey => [
            0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
        ],
        // edef8ba9-79d6-4ace-a3c8-27dcd51d21ed
        DrmSystem::Widevine => [
            0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed,
        ],
        // 9a04f079-9840-4286-ab92-e65be0885f95
        DrmSystem::PlayReady => [
            0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95,
        ],
    }
}

/// A `pssh` box for content protected with `cenc` (see [`pssh_for_scheme`]).
///
/// ClearKey: version 1 with the key ids and no data (W3C "cenc" Initialization Data Format). Widevine: version 0
/// whose data is a WidevinePsshData protobuf with one `key_ids` field per key. PlayReady: version 0 whose data is
/// a PlayReady Object holding a WRMHEADER (4.0.0.0 for one key id, 4.2.0.0 for several) with the key ids (base64
/// of the GUID byte order) and `license_url` as LA_URL. `license_url` is only used by PlayReady.
pub fn pssh(system: DrmSystem, kids: &[[u8; 16]], license_url: Option<&str>) -> Vec<u8> {
    pssh_for_scheme(system, kids, license_url, Scheme::Cenc)
}

/// [`pssh`] for content protected with `scheme`: for `cbcs`, the Widevine data also carries
/// `protection_scheme = 'cbcs'` and the PlayReady header is WRMHEADER 4.3.0.0 with `ALGID="AESCBC"`.
pub fn pssh_for_scheme(system: DrmSystem, kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> Vec<u8> {
    let (version, data) = match system {
        DrmSystem::ClearKey => (1u8, Vec::new()),
        DrmSystem::Widevine => (0, widevine_pssh_data(kids, scheme)),
        DrmSystem::PlayReady => (0, playready_object(kids, license_url, scheme)),
    };
    let mut body = Vec::with_capacity(24 + 16 * kids.len() + data.len());
    body.extend_from_slice(&system_id(system));
    if version == 1 {
        body.extend_from_slice(&(kids.len() as u32).to_be_bytes());
        for kid in kids {
            body.extend_from_slice(kid);
        }
    }
    body.extend_from_slice(&(data.len() as u32).to_be_bytes());
    body.extend_from_slice(&data);
    full_box(b"pssh", version, 0, &body)
}

/// WidevinePsshData: `repeated bytes key_ids = 2` and, for cbcs, `optional uint32 protection_scheme = 9`.
fn widevine_pssh_data(kids: &[[u8; 16]], scheme: Scheme) -> Vec<u8> {
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

/// A key id in the byte order of a little-endian GUID (PlayReady's KID), base64.
fn playready_kid(kid: &[u8; 16]) -> String {
    let mut guid = *kid;
    guid[0..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    openssl::base64::encode_block(&guid)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
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
            playready_kid(kid)
        ),
        _ => {
            let (version, algid) = match scheme {
                Scheme::Cenc => ("4.2.0.0", "AESCTR"),
                Scheme::Cbcs => ("4.3.0.0", "AESCBC"),
            };
            let kids: String = kids
                .iter()
                .map(|kid| format!("<KID ALGID=\"{algid}\" VALUE=\"{}\"></KID>", playready_kid(kid)))
                .collect();
            format!(
                "<WRMHEADER xmlns=\"{NS}\" version=\"{version}\"><DATA><PROTECTINFO><KIDS>{kids}</KIDS>\
                 </PROTECTINFO>{la_url}</DATA></WRMHEADER>"
            )
        }
    }
}

/// PlayReady Object: little-endian length, record count 1, record type 1 (rights management header), UTF-16LE XML.
fn playready_object(kids: &[[u8; 16]], license_url: Option<&str>, scheme: Scheme) -> Vec<u8> {
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

/// HLS AES-128: the whole segment, AES-128-CBC with PKCS#7 padding.
pub fn aes128_cbc(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> std::result::Result<Vec<u8>, EncryptError> {
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(Cipher::aes_128_cbc()), Some(key), Some(iv))?;
    let whole = data.len() / 16 * 16;
    let mut out = vec![0u8; whole + 32];
    update(&mut ctx, &data[..whole], &mut out)?;
    // The last partial block (or an empty one) gets the PKCS#7 padding from the final call.
    let mut tail = [0u8; 32];
    let n = ctx.cipher_update(&data[whole..], Some(&mut tail))?;
    let m = ctx.cipher_final(&mut tail[n..])?;
    out.truncate(whole);
    out.extend_from_slice(&tail[..n + m]);
    Ok(out)
}

/// `EVP_CipherUpdate` from `input` into `output` in pieces below 2 GiB (openssl takes an `int` length). `output`
/// must hold `input.len()` bytes plus one block; with padding off, exactly `input.len()` bytes are written.
fn update(ctx: &mut CipherCtx, input: &[u8], output: &mut [u8]) -> Result<()> {
    const PIECE: usize = 1 << 30;
    let mut done = 0;
    while done < input.len() {
        let n = (input.len() - done).min(PIECE);
        let written = ctx.cipher_update(&input[done..done + n], Some(&mut output[done..]))?;
        if written != n {
            return Err(malformed("cipher did not process whole blocks"));
        }
        done += n;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Boxes

/// One box: its type and where its header, body and end are in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bx {
    kind: [u8; 4],
    start: usize,
    body: usize,
    end: usize,
}

impl Bx {
    fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.body..self.end]
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The boxes laid end to end in `buf[range]`; each must fit in the range.
fn boxes(buf: &[u8], range: Range<usize>) -> Result<Vec<Bx>> {
    if range.end > buf.len() || range.start > range.end {
        return Err(malformed("box range outside the buffer"));
    }
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let left = range.end - pos;
        if left < 8 {
            return Err(malformed(format!("{left} stray bytes at offset {pos}")));
        }
        let size32 = be32(buf, pos).ok_or_else(|| malformed("truncated box header"))?;
        let kind: [u8; 4] = buf[pos + 4..pos + 8].try_into().map_err(|_| malformed("box type"))?;
        let (size, header) = match size32 {
            0 => return Err(malformed(format!("box '{}' of size 0 at offset {pos}", fourcc(&kind)))),
            1 => {
                let large = be64(buf, pos + 8).filter(|_| left >= 16);
                let large = large.ok_or_else(|| malformed("truncated 64-bit box size"))?;
                (
                    usize::try_from(large).map_err(|_| malformed("box size beyond memory"))?,
                    16,
                )
            }
            n => (n as usize, 8),
        };
        if size < header || size > left {
            return Err(malformed(format!(
                "box '{}' at offset {pos} has size {size} with {left} bytes left in its parent",
                fourcc(&kind)
            )));
        }
        out.push(Bx {
            kind,
            start: pos,
            body: pos + header,
            end: pos + size,
        });
        pos += size;
    }
    Ok(out)
}

fn fourcc(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The only child of `kind` in `list`: an error when absent or repeated.
fn one(list: &[Bx], kind: &[u8; 4], parent: &str) -> Result<Bx> {
    let mut found = list.iter().filter(|b| &b.kind == kind);
    match (found.next(), found.next()) {
        (Some(b), None) => Ok(*b),
        (None, _) => Err(malformed(format!("no '{}' in {parent}", fourcc(kind)))),
        (Some(_), Some(_)) => Err(unsupported(format!("several '{}' in {parent}", fourcc(kind)))),
    }
}

fn children(buf: &[u8], parent: &Bx) -> Result<Vec<Bx>> {
    boxes(buf, parent.body..parent.end)
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(&((12 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn plain_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// Inserts `insertions` (absolute position, bytes) into `buf[range]` and grows the size field of each box of `grown`
/// by the given number of bytes. An insertion at a box's start goes before that box. The result covers `range` only.
fn splice(buf: &[u8], range: Range<usize>, insertions: &[(usize, &[u8])], grown: &[(Bx, usize)]) -> Result<Vec<u8>> {
    let extra: usize = insertions.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(range.len() + extra);
    let mut sorted: Vec<&(usize, &[u8])> = insertions.iter().collect();
    sorted.sort_by_key(|(p, _)| *p);
    let mut pos = range.start;
    for (at, bytes) in sorted {
        if *at < pos || *at > range.end {
            return Err(malformed("insertion outside its range"));
        }
        out.extend_from_slice(&buf[pos..*at]);
        out.extend_from_slice(bytes);
        pos = *at;
    }
    out.extend_from_slice(&buf[pos..range.end]);
    let shift = |p: usize| -> usize { insertions.iter().filter(|(at, _)| *at <= p).map(|(_, b)| b.len()).sum() };
    for (b, inside) in grown {
        if b.start < range.start || b.end > range.end {
            return Err(malformed("grown box outside its range"));
        }
        let at = b.start - range.start + shift(b.start);
        let new_size = b.end - b.start + inside;
        if b.body - b.start == 16 {
            out[at + 8..at + 16].copy_from_slice(&(new_size as u64).to_be_bytes());
        } else {
            let size = u32::try_from(new_size).map_err(|_| EncryptError::Overflow("box size"))?;
            out[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Init segments

/// The codec of a track, as far as encryption cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Av1,
    Opus,
}

/// What the encryption of a track needs from its (clear) init segment, and where its boxes are.
struct Init<'a> {
    codec: Codec,
    track_id: u32,
    /// `configOBUs` of the `av1C` record.
    config_obus: &'a [u8],
    trex_default_sample_size: Option<u32>,
    moov: Bx,
    /// moov > trak > mdia > minf > stbl > stsd (ancestors of the sample entry, outermost first).
    path: [Bx; 6],
    entry: Bx,
}

fn parse_init(init: &[u8]) -> Result<Init<'_>> {
    let top = boxes(init, 0..init.len())?;
    let moov = one(&top, b"moov", "the init segment")?;
    let moov_children = children(init, &moov)?;
    let trak = one(&moov_children, b"trak", "moov")?;
    let trak_children = children(init, &trak)?;
    let tkhd = one(&trak_children, b"tkhd", "trak")?;
    let tkhd_body = tkhd.body(init);
    let track_id_at = if tkhd_body.first() == Some(&1) { 20 } else { 12 };
    let track_id = be32(tkhd_body, track_id_at).ok_or_else(|| malformed("truncated tkhd"))?;
    let mdia = one(&trak_children, b"mdia", "trak")?;
    let minf = one(&children(init, &mdia)?, b"minf", "mdia")?;
    let stbl = one(&children(init, &minf)?, b"stbl", "minf")?;
    let stsd = one(&children(init, &stbl)?, b"stsd", "stbl")?;
    let stsd_body = stsd.body(init);
    let count = be32(stsd_body, 4).ok_or_else(|| malformed("truncated stsd"))?;
    if count != 1 {
        return Err(unsupported(format!("stsd with {count} sample entries (one expected)")));
    }
    let entries = boxes(init, stsd.body + 8..stsd.end)?;
    let [entry] = entries[..] else {
        return Err(malformed("stsd entry count does not match its boxes"));
    };
    let (codec, fixed) = match &entry.kind {
        b"av01" => (Codec::Av1, 78),
        b"Opus" => (Codec::Opus, 28),
        b"encv" | b"enca" => return Err(unsupported("the init segment is already protected")),
        other => return Err(unsupported(format!("sample entry '{}'", fourcc(other)))),
    };
    let entry_children = if entry.end - entry.body >= fixed {
        boxes(init, entry.body + fixed..entry.end)?
    } else {
        return Err(malformed("truncated sample entry"));
    };
    let config_obus = if codec == Codec::Av1 {
        let av1c = one(&entry_children, b"av1C", "av01")?;
        let body = av1c.body(init);
        if body.len() < 4 || body[0] != 0x81 {
            return Err(malformed("av1C record without marker/version 1"));
        }
        &body[4..]
    } else {
        one(&entry_children, b"dOps", "Opus")?;
        &[][..]
    };
    let mut trex_default_sample_size = None;
    if let Some(mvex) = moov_children.iter().find(|b| &b.kind == b"mvex") {
        for trex in children(init, mvex)?.iter().filter(|b| &b.kind == b"trex") {
            let body = trex.body(init);
            if be32(body, 4) == Some(track_id) {
                trex_default_sample_size = Some(be32(body, 16).ok_or_else(|| malformed("truncated trex"))?);
            }
        }
    }
    Ok(Init {
        codec,
        track_id,
        config_obus,
        trex_default_sample_size,
        moov,
        path: [moov, trak, mdia, minf, stbl, stsd],
        entry,
    })
}

/// The constant IV of `cbcs`, derived from the key id (so init and media segments agree without state).
fn cbcs_constant_iv(kid: &[u8; 16]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"vod-package cbcs constant IV");
    h.update(kid);
    let d = h.finish();
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&d[..16]);
    iv
}

/// `cbcs` pattern of a codec: (crypt_byte_block, skip_byte_block).
fn cbcs_pattern(codec: Codec) -> (u8, u8) {
    match codec {
        Codec::Av1 => (1, 9),
        Codec::Opus => (0, 0),
    }
}

fn tenc(scheme: Scheme, codec: Codec, kid: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    match scheme {
        Scheme::Cenc => {
            body.extend_from_slice(&[0, 0, 1, 8]);
            body.extend_from_slice(kid);
            full_box(b"tenc", 0, 0, &body)
        }
        Scheme::Cbcs => {
            let (crypt, skip) = cbcs_pattern(codec);
            body.extend_from_slice(&[0, (crypt << 4) | skip, 1, 0]);
            body.extend_from_slice(kid);
            body.push(16);
            body.extend_from_slice(&cbcs_constant_iv(kid));
            full_box(b"tenc", 1, 0, &body)
        }
    }
}

/// `sinf` (frma, schm, schi/tenc) for a sample entry of type `original`.
fn sinf(original: &[u8; 4], scheme: Scheme, codec: Codec, kid: &[u8; 16]) -> Vec<u8> {
    let scheme_type = match scheme {
        Scheme::Cenc => b"cenc",
        Scheme::Cbcs => b"cbcs",
    };
    let mut schm = Vec::with_capacity(8);
    schm.extend_from_slice(scheme_type);
    schm.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    let mut body = plain_box(b"frma", original);
    body.extend(full_box(b"schm", 0, 0, &schm));
    body.extend(plain_box(b"schi", &tenc(scheme, codec, kid)));
    plain_box(b"sinf", &body)
}

/// Rewrites an init segment for Common Encryption: the sample entry becomes `encv` (AV1) or `enca` (Opus) and
/// gets a `sinf` (frma with the original format, schm `cenc`/`cbcs` version 1.0, schi/tenc with `kid`): `cenc` is
/// tenc version 0 with 8-byte per-sample IVs; `cbcs` is tenc version 1 with the 1:9 pattern for video and 0:0
/// (whole-sample) for audio, no per-sample IVs and a 16-byte constant IV derived from `kid`. `pssh_boxes` are
/// appended to `moov` as given.
pub fn protect_init(
    init: &[u8],
    scheme: Scheme,
    kid: &[u8; 16],
    pssh_boxes: &[Vec<u8>],
) -> std::result::Result<Vec<u8>, EncryptError> {
    let info = parse_init(init)?;
    for (i, p) in pssh_boxes.iter().enumerate() {
        match boxes(p, 0..p.len())?.as_slice() {
            [b] if &b.kind == b"pssh" => {}
            _ => return Err(malformed(format!("pssh_boxes[{i}] is not one pssh box"))),
        }
    }
    let sinf = sinf(&info.entry.kind, scheme, info.codec, kid);
    let psshs: Vec<u8> = pssh_boxes.concat();
    // Every ancestor of the sample entry grows by the sinf; moov also by the pssh boxes.
    let mut grown: Vec<(Bx, usize)> = info.path.iter().map(|b| (*b, sinf.len())).collect();
    grown[0].1 += psshs.len();
    grown.push((info.entry, sinf.len()));
    let insertions: [(usize, &[u8]); 2] = [(info.entry.end, &sinf), (info.moov.end, &psshs)];
    let mut out = splice(init, 0..init.len(), &insertions, &grown)?;
    // The entry's type is before both insertions, so its position did not move.
    let new_kind = match info.codec {
        Codec::Av1 => b"encv",
        Codec::Opus => b"enca",
    };
    out[info.entry.start + 4..info.entry.start + 8].copy_from_slice(new_kind);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Media segments

/// A `trun` of the segment: where its data offset field is and its samples' byte ranges (in the segment).
struct Trun {
    data_offset_at: usize,
    data_offset: i32,
}

/// The parsed `moof` of a media segment.
struct Fragment {
    moof: Bx,
    traf: Bx,
    truns: Vec<Trun>,
    /// Every sample's bytes, in order and not overlapping, inside an `mdat` after the `moof`.
    samples: Vec<Range<usize>>,
}

fn parse_fragment(segment: &[u8], init: &Init) -> Result<Fragment> {
    let top = boxes(segment, 0..segment.len())?;
    let moof = one(&top, b"moof", "the media segment")?;
    let mdats: Vec<Bx> = top.iter().filter(|b| &b.kind == b"mdat").copied().collect();
    let moof_children = children(segment, &moof)?;
    let traf = one(&moof_children, b"traf", "moof")?;
    let traf_children = children(segment, &traf)?;
    for kind in [b"senc", b"saiz", b"saio", b"sbgp"] {
        if traf_children.iter().any(|b| &b.kind == kind) {
            return Err(unsupported(format!(
                "traf already has '{}' (protected segment?)",
                fourcc(kind)
            )));
        }
    }
    let tfhd = one(&traf_children, b"tfhd", "traf")?;
    let tb = tfhd.body(segment);
    let tf_flags = be32(tb, 0).ok_or_else(|| malformed("truncated tfhd"))? & 0x00ff_ffff;
    let track_id = be32(tb, 4).ok_or_else(|| malformed("truncated tfhd"))?;
    if track_id != init.track_id {
        return Err(malformed(format!(
            "segment of track {track_id}, init segment of track {}",
            init.track_id
        )));
    }
    if tf_flags & 0x1 != 0 {
        return Err(unsupported("tfhd base_data_offset (only moof-relative data offsets)"));
    }
    let mut at = 8;
    for (flag, len) in [(0x2, 4), (0x8, 4)] {
        if tf_flags & flag != 0 {
            at += len;
        }
    }
    let tfhd_default_size = if tf_flags & 0x10 != 0 {
        Some(be32(tb, at).ok_or_else(|| malformed("truncated tfhd"))?)
    } else {
        None
    };
    let mut truns = Vec::new();
    let mut samples = Vec::new();
    for trun in traf_children.iter().filter(|b| &b.kind == b"trun") {
        let b = trun.body(segment);
        let flags = be32(b, 0).ok_or_else(|| malformed("truncated trun"))? & 0x00ff_ffff;
        let count = be32(b, 4).ok_or_else(|| malformed("truncated trun"))? as usize;
        if flags & 0x1 == 0 {
            return Err(unsupported("trun without data_offset"));
        }
        let data_offset = be32(b, 8).ok_or_else(|| malformed("truncated trun"))? as i32;
        let mut at = 12 + if flags & 0x4 != 0 { 4 } else { 0 };
        let fields = [0x100, 0x200, 0x400, 0x800].map(|f| flags & f != 0);
        let row = 4 * fields.iter().filter(|&&f| f).count();
        if count
            .checked_mul(row)
            .and_then(|n| n.checked_add(at))
            .is_none_or(|n| n > b.len())
        {
            return Err(malformed(format!("trun of {count} samples does not fit its box")));
        }
        if row == 0 && count > segment.len() {
            return Err(malformed(format!("trun of {count} samples without per-sample fields")));
        }
        let base = i64::try_from(moof.start).map_err(|_| EncryptError::Overflow("offset"))?;
        let mut pos = usize::try_from(base + i64::from(data_offset))
            .map_err(|_| malformed("trun data_offset points before the segment"))?;
        truns.push(Trun {
            data_offset_at: trun.body + 8,
            data_offset,
        });
        for _ in 0..count {
            if fields[0] {
                at += 4;
            }
            let size = if fields[1] {
                let s = be32(b, at).ok_or_else(|| malformed("truncated trun"))?;
                at += 4;
                s
            } else {
                tfhd_default_size
                    .or(init.trex_default_sample_size)
                    .ok_or_else(|| malformed("no sample size in trun, tfhd or trex"))?
            };
            at += 4 * usize::from(fields[2]) + 4 * usize::from(fields[3]);
            let end = pos
                .checked_add(size as usize)
                .ok_or_else(|| malformed("sample beyond the segment"))?;
            samples.push(pos..end);
            pos = end;
        }
    }
    if truns.is_empty() {
        return Err(malformed("traf without trun"));
    }
    let mut prev_end = moof.end;
    for (i, s) in samples.iter().enumerate() {
        if s.start < prev_end {
            return Err(unsupported(format!(
                "sample {i} overlaps the moof or the previous sample"
            )));
        }
        if !mdats.iter().any(|m| m.body <= s.start && s.end <= m.end) {
            return Err(malformed(format!("sample {i} ({s:?}) is not inside an mdat")));
        }
        prev_end = s.end;
    }
    Ok(Fragment {
        moof,
        traf,
        truns,
        samples,
    })
}

/// One sample's encryption layout: its subsamples (clear, protected), or `None` for whole-sample encryption.
type Layout = Option<Vec<(u16, u32)>>;

/// Subsamples of an AV1 sample (AV1-ISOBMFF §"Common Encryption"): only tile data (`decode_tile()`) is protected.
/// `cbcs`: a subsample per tile, protecting the whole tile (the pattern leaves a trailing partial block clear).
/// `cenc`: the protected part of a tile is its last whole 16-byte blocks (the leading remainder is clear), and a
/// tile under 16 bytes stays wholly clear. Everything else — OBU headers and sizes, sequence/frame headers, tile
/// group headers and tile size fields, metadata, padding — is clear, merged into the next subsample.
fn av1_subsamples(parser: &mut Av1Parser, sample: &[u8], scheme: Scheme) -> std::result::Result<Layout, String> {
    let obus = parser.tiles(sample).map_err(|e| e.to_string())?;
    let mut subsamples: Vec<(u16, u32)> = Vec::new();
    let mut clear_start = 0usize; // start of the clear bytes not yet put in a subsample
    for (_, tiles) in &obus {
        for tile in tiles {
            let (protected_start, protected_len) = match scheme {
                Scheme::Cbcs => (tile.start, tile.len()),
                Scheme::Cenc => {
                    let len = tile.len() / 16 * 16;
                    (tile.end - len, len)
                }
            };
            if protected_len == 0 {
                continue; // stays in the clear run
            }
            push_subsample(&mut subsamples, protected_start - clear_start, protected_len)?;
            clear_start = tile.end;
        }
    }
    if clear_start < sample.len() || subsamples.is_empty() {
        push_subsample(&mut subsamples, sample.len() - clear_start, 0)?;
    }
    Ok(Some(subsamples))
}

/// Appends a subsample; clear runs longer than a `BytesOfClearData` field are split into clear-only subsamples.
fn push_subsample(subsamples: &mut Vec<(u16, u32)>, clear: usize, protected: usize) -> std::result::Result<(), String> {
    let mut clear = clear;
    while clear > usize::from(u16::MAX) {
        subsamples.push((u16::MAX, 0));
        clear -= usize::from(u16::MAX);
    }
    let protected = u32::try_from(protected).map_err(|_| "tile larger than 4 GiB".to_string())?;
    subsamples.push((clear as u16, protected));
    Ok(())
}

/// The 8-byte `cenc` IV of a sample: `segment_number:32 ‖ sample_index:32`, XORed with a mask derived from the key
/// id and the clear init segment. Within a track the IVs are distinct for every (segment, sample) pair; the mask
/// keeps tracks and renditions that share a key (same key id, different init segments) on unrelated IV sequences.
fn cenc_iv(mask: u64, segment_number: u32, sample_index: usize) -> [u8; 8] {
    ((u64::from(segment_number) << 32 | (sample_index as u64 & 0xffff_ffff)) ^ mask).to_be_bytes()
}

fn cenc_iv_mask(kid: &[u8; 16], init: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"vod-package cenc IV mask");
    h.update(kid);
    h.update(&openssl::sha::sha256(init));
    let d = h.finish();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The `saiz`, `saio` and `senc` boxes of a traf whose `senc` starts at `senc_offset` bytes from the moof.
fn aux_boxes(ivs: &[[u8; 8]], layouts: &[Layout], scheme: Scheme, aux_start_in_moof: usize) -> Result<Vec<u8>> {
    let iv_size = match scheme {
        Scheme::Cenc => 8,
        Scheme::Cbcs => 0,
    };
    let with_subsamples = layouts.iter().any(Option::is_some);
    let mut senc_body = Vec::with_capacity(4 + layouts.len() * (iv_size + 16));
    let count = u32::try_from(layouts.len()).map_err(|_| EncryptError::Overflow("sample count"))?;
    senc_body.extend_from_slice(&count.to_be_bytes());
    let mut sizes = Vec::with_capacity(layouts.len());
    for (i, layout) in layouts.iter().enumerate() {
        let before = senc_body.len();
        if iv_size == 8 {
            senc_body.extend_from_slice(&ivs[i]);
        }
        if with_subsamples {
            let subs = layout.as_deref().unwrap_or_default();
            let n = u16::try_from(subs.len()).map_err(|_| EncryptError::Overflow("subsample count"))?;
            senc_body.extend_from_slice(&n.to_be_bytes());
            for (clear, protected) in subs {
                senc_body.extend_from_slice(&clear.to_be_bytes());
                senc_body.extend_from_slice(&protected.to_be_bytes());
            }
        }
        let size = u8::try_from(senc_body.len() - before)
            .map_err(|_| EncryptError::Overflow("sample auxiliary information (255 bytes: too many tiles)"))?;
        sizes.push(size);
    }
    if sizes.iter().all(|&s| s == 0) {
        // Full-sample encryption with a constant IV: the auxiliary information is empty and is omitted
        // (ISO/IEC 23001-7); the tenc says everything.
        return Ok(Vec::new());
    }
    let mut saiz_body = Vec::with_capacity(5 + sizes.len());
    if sizes.iter().all(|&s| s == sizes[0]) {
        saiz_body.push(sizes[0]);
        saiz_body.extend_from_slice(&count.to_be_bytes());
    } else {
        saiz_body.push(0);
        saiz_body.extend_from_slice(&count.to_be_bytes());
        saiz_body.extend_from_slice(&sizes);
    }
    let saiz = full_box(b"saiz", 0, 0, &saiz_body);

    let saio_len = 12 + 8;
    // saio's offset: the first sample's entry in senc (after senc's header, flags and sample_count).
    let offset = aux_start_in_moof + saiz.len() + saio_len + 12 + 4;
    let offset = u32::try_from(offset).map_err(|_| EncryptError::Overflow("saio offset"))?;
    let mut saio_body = Vec::with_capacity(8);
    saio_body.extend_from_slice(&1u32.to_be_bytes());
    saio_body.extend_from_slice(&offset.to_be_bytes());
    let saio = full_box(b"saio", 0, 0, &saio_body);
    let senc = full_box(b"senc", 0, if with_subsamples { 0x2 } else { 0 }, &senc_body);
    let mut out = saiz;
    out.extend(saio);
    out.extend(senc);
    Ok(out)
}

/// Encrypts one media segment (see the module doc): sample data is encrypted into the output as it is copied, the
/// traf gets `saiz`, `saio` and `senc` (with subsamples for AV1), and the moof/traf sizes and the trun data offsets
/// are fixed. `init` is the clear init segment of the track. `cenc` IVs are derived from the key id, the init
/// segment, `segment_number` and the sample index, so the same request gives the same bytes.
pub fn protect_segment(
    init: &[u8],
    segment: &[u8],
    scheme: Scheme,
    key: &[u8; 16],
    kid: &[u8; 16],
    segment_number: u32,
) -> std::result::Result<Vec<u8>, EncryptError> {
    let info = parse_init(init)?;
    let frag = parse_fragment(segment, &info)?;

    // Layout of every sample.
    let layouts: Vec<Layout> = match info.codec {
        Codec::Opus => vec![None; frag.samples.len()],
        Codec::Av1 => {
            let mut parser = Av1Parser::with_config_obus(info.config_obus).map_err(|e| EncryptError::Av1 {
                sample: 0,
                reason: format!("av1C: {e}"),
            })?;
            frag.samples
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    av1_subsamples(&mut parser, &segment[r.clone()], scheme)
                        .map_err(|reason| EncryptError::Av1 { sample: i, reason })
                })
                .collect::<Result<_>>()?
        }
    };
    let mask = cenc_iv_mask(kid, init);
    let ivs: Vec<[u8; 8]> = match scheme {
        Scheme::Cenc => (0..frag.samples.len())
            .map(|i| cenc_iv(mask, segment_number, i))
            .collect(),
        Scheme::Cbcs => Vec::new(),
    };

    // The new moof: aux boxes appended to the traf, sizes grown, data offsets moved.
    let aux = aux_boxes(&ivs, &layouts, scheme, frag.traf.end - frag.moof.start)?;
    let mut moof = splice(
        segment,
        frag.moof.start..frag.moof.end,
        &[(frag.traf.end, &aux)],
        &[(frag.moof, aux.len()), (frag.traf, aux.len())],
    )?;
    for trun in &frag.truns {
        let moved = i32::try_from(aux.len())
            .ok()
            .and_then(|d| trun.data_offset.checked_add(d))
            .ok_or(EncryptError::Overflow("trun data_offset"))?;
        let at = trun.data_offset_at - frag.moof.start; // before the traf's end: not shifted
        moof[at..at + 4].copy_from_slice(&moved.to_be_bytes());
    }

    // Output: everything before the moof, the new moof, then the rest with sample data encrypted on the way.
    let total = segment.len() + aux.len();
    let mut out = vec![0u8; total + 16]; // 16 spare bytes: openssl wants room for a block beyond each update
    out[..frag.moof.start].copy_from_slice(&segment[..frag.moof.start]);
    out[frag.moof.start..frag.moof.start + moof.len()].copy_from_slice(&moof);
    let shift = aux.len();
    let mut copied = frag.moof.end; // input position up to which the output is written
    let copy = |out: &mut [u8], range: Range<usize>| {
        out[range.start + shift..range.end + shift].copy_from_slice(&segment[range]);
    };

    let mut ctx = CipherCtx::new()?;
    let cipher: &CipherRef = match scheme {
        Scheme::Cenc => Cipher::aes_128_ctr(),
        Scheme::Cbcs => Cipher::aes_128_cbc(),
    };
    ctx.encrypt_init(Some(cipher), Some(key), None)?;
    ctx.set_padding(false);
    let constant_iv = cbcs_constant_iv(kid);
    let (crypt, skip) = cbcs_pattern(info.codec);

    for (i, range) in frag.samples.iter().enumerate() {
        copy(&mut out, copied..range.start);
        let sample_start = range.start;
        let whole = [(0u16, u32::try_from(range.len()).unwrap_or(u32::MAX))];
        let subsamples: &[(u16, u32)] = layouts[i].as_deref().unwrap_or(&whole);
        if scheme == Scheme::Cenc {
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&ivs[i]);
            ctx.encrypt_init(None, None, Some(&iv))?;
        }
        let mut pos = sample_start;
        for &(clear, protected) in subsamples {
            let clear_end = pos + usize::from(clear);
            let end = clear_end + protected as usize;
            if end > range.end {
                return Err(malformed(format!("sample {i}: subsamples exceed the sample")));
            }
            copy(&mut out, pos..clear_end);
            match scheme {
                Scheme::Cenc => {
                    update(&mut ctx, &segment[clear_end..end], &mut out[clear_end + shift..])?;
                }
                Scheme::Cbcs => {
                    ctx.encrypt_init(None, None, Some(&constant_iv))?;
                    let blocks = (end - clear_end) / 16;
                    if crypt == 0 {
                        // Whole-sample (audio): every complete block, chained; a trailing partial block is clear.
                        let enc_end = clear_end + 16 * blocks;
                        update(&mut ctx, &segment[clear_end..enc_end], &mut out[clear_end + shift..])?;
                        copy(&mut out, enc_end..end);
                    } else {
                        // Pattern: `crypt` encrypted blocks then `skip` clear ones; CBC chains over encrypted blocks.
                        let mut block = 0usize;
                        let mut p = clear_end;
                        while block < blocks {
                            let n = usize::from(crypt).min(blocks - block);
                            update(&mut ctx, &segment[p..p + 16 * n], &mut out[p + shift..])?;
                            p += 16 * n;
                            block += n;
                            let s = usize::from(skip).min(blocks - block);
                            copy(&mut out, p..p + 16 * s);
                            p += 16 * s;
                            block += s;
                        }
                        copy(&mut out, p..end);
                    }
                }
            }
            pos = end;
        }
        copy(&mut out, pos..range.end);
        copied = range.end;
    }
    copy(&mut out, copied..segment.len());
    out.truncate(total);
    Ok(out)
}
