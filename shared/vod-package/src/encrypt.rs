//! Dynamic encryption of the stored CMAF renditions, as pure functions over bytes: Common Encryption
//! (ISO/IEC 23001-7, `cenc` and `cbcs`) of init and media segments, with AV1 subsample encryption as the
//! AV1-ISOBMFF binding requires and whole-sample encryption of audio (Opus, AAC) (the DRM systems' `pssh` boxes come from
//! `crate::drm`); whole-segment AES-128-CBC for HLS `METHOD=AES-128`. Keys come from the caller; no I/O here.
//!
//! Boxes are walked by hand (every size checked against its parent) rather than decoded with mp4-atom, which has no
//! `sinf`/`tenc`/`pssh`/`encv` types and would rebuild, not splice, the boxes it does not know.

use std::ops::Range;
use std::sync::OnceLock;

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

/// Why a segment could not be protected.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("malformed MP4: {0}")]
    Malformed(String),
    #[error("unsupported MP4: {0}")]
    Unsupported(String),
    #[error("AV1 sample {sample}: {reason}")]
    Av1 { sample: usize, reason: String },
    #[error("H.264 sample {sample}: {reason}")]
    Avc { sample: usize, reason: String },
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

/// HLS AES-128: the whole segment, AES-128-CBC with PKCS#7 padding.
pub fn aes128_cbc(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> std::result::Result<Vec<u8>, EncryptError> {
    aes128_cbc_owned(key, iv, data.to_vec())
}

/// [`aes128_cbc`] encrypting the segment's own buffer: whole blocks pass through a cache-sized scratch buffer and
/// back, so a segment costs one cipher pass and no large allocation (the response body is the same buffer).
pub fn aes128_cbc_owned(
    key: &[u8; 16],
    iv: &[u8; 16],
    mut data: Vec<u8>,
) -> std::result::Result<Vec<u8>, EncryptError> {
    const CHUNK: usize = 16 * 1024;
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(aes_128_cbc()), Some(key), Some(iv))?;
    ctx.set_padding(false);
    // PKCS#7: 1 to 16 bytes of the pad length complete the last block.
    let pad = 16 - data.len() % 16;
    data.resize(data.len() + pad, pad as u8);
    let mut scratch = vec![0u8; CHUNK + 16];
    let mut at = 0;
    while at < data.len() {
        let n = (data.len() - at).min(CHUNK);
        let written = ctx.cipher_update(&data[at..at + n], Some(&mut scratch))?;
        if written != n {
            return Err(malformed("cipher did not process whole blocks"));
        }
        data[at..at + n].copy_from_slice(&scratch[..n]);
        at += n;
    }
    Ok(data)
}

/// `cenc` whole-sample encryption of many small samples (Opus packets are a few hundred bytes): the CTR keystream
/// blocks (IV ‖ block counter) of every sample are built and encrypted in one AES-ECB call, then XORed into the
/// samples, instead of one cipher re-initialisation and update per sample.
fn ctr_whole_samples(
    key: &[u8; 16],
    out: &mut [u8],
    samples: &[Range<usize>],
    shift: usize,
    ivs: &[[u8; 8]],
) -> Result<()> {
    let blocks: usize = samples.iter().map(|r| r.len().div_ceil(16)).sum();
    let len = blocks.checked_mul(16).ok_or(EncryptError::Overflow("keystream"))?;
    // IV ‖ counter, one block per 16 bytes of each sample, plus the spare block openssl wants; written by
    // `extend` over ranges (exact-size iterators: no per-block capacity checks, no zero-fill first).
    let mut keystream: Vec<[u8; 16]> = Vec::with_capacity(blocks + 1);
    for (range, iv) in samples.iter().zip(ivs) {
        let base = u128::from(u64::from_be_bytes(*iv)) << 64;
        keystream.extend((0..range.len().div_ceil(16) as u128).map(|c| (base | c).to_be_bytes()));
    }
    keystream.push([0u8; 16]);
    let keystream = keystream.as_flattened_mut();
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(aes_128_ecb()), Some(key), None)?;
    ctx.set_padding(false);
    update_in_place(&mut ctx, keystream, len)?;
    let mut at = 0;
    for range in samples {
        let data = out
            .get_mut(range.start + shift..range.end + shift)
            .ok_or_else(|| malformed("sample beyond the output"))?;
        let stream = &keystream[at..at + data.len()];
        // A plain byte loop: the compiler vectorises it.
        for (d, k) in data.iter_mut().zip(stream) {
            *d ^= k;
        }
        at += 16 * range.len().div_ceil(16);
    }
    Ok(())
}

/// `cbcs` whole-sample encryption (audio): every complete block of each sample, CBC from the constant IV; a
/// trailing partial block stays clear. The cipher is initialised once per segment: the chain runs on from sample to
/// sample, and each sample's first block is first XORed with (last ciphertext block ⊕ constant IV), so the cipher
/// computes E(P₀ ⊕ IV), as a chain restarted from the constant IV would.
fn cbc_whole_samples(
    key: &[u8; 16],
    iv: &[u8; 16],
    out: &mut [u8],
    samples: &[Range<usize>],
    shift: usize,
) -> Result<()> {
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(aes_128_cbc()), Some(key), Some(iv))?;
    ctx.set_padding(false);
    let mut chain: Option<[u8; 16]> = None;
    for range in samples {
        let start = range.start + shift;
        let n = 16 * (range.len() / 16);
        if n == 0 {
            continue;
        }
        let data = out
            .get_mut(start..)
            .filter(|d| d.len() >= n)
            .ok_or_else(|| malformed("sample beyond the output"))?;
        if let Some(last) = chain {
            for ((d, c), v) in data[..16].iter_mut().zip(last).zip(iv) {
                *d ^= c ^ v;
            }
        }
        if data.len() >= n + 16 {
            update_in_place(&mut ctx, data, n)?;
        } else {
            // The segment's last sample: openssl wants a block of room after the data, so it goes through a copy.
            let mut tail = Vec::with_capacity(n + 16);
            tail.extend_from_slice(&data[..n]);
            tail.extend_from_slice(&[0u8; 16]);
            update_in_place(&mut ctx, &mut tail, n)?;
            data[..n].copy_from_slice(&tail[..n]);
        }
        let mut last = [0u8; 16];
        last.copy_from_slice(&data[n - 16..n]);
        chain = Some(last);
    }
    Ok(())
}

/// A cipher fetched from the default provider once per process (OpenSSL 3 otherwise looks a legacy cipher up again,
/// with locks and name compares, at every context initialisation, i.e. per segment); the legacy one if that fails.
fn fetched(
    slot: &'static OnceLock<Option<Cipher>>,
    name: &str,
    legacy: fn() -> &'static CipherRef,
) -> &'static CipherRef {
    slot.get_or_init(|| Cipher::fetch(None, name, None).ok())
        .as_deref()
        .unwrap_or_else(legacy)
}

fn aes_128_cbc() -> &'static CipherRef {
    static SLOT: OnceLock<Option<Cipher>> = OnceLock::new();
    fetched(&SLOT, "AES-128-CBC", Cipher::aes_128_cbc)
}

fn aes_128_ctr() -> &'static CipherRef {
    static SLOT: OnceLock<Option<Cipher>> = OnceLock::new();
    fetched(&SLOT, "AES-128-CTR", Cipher::aes_128_ctr)
}

fn aes_128_ecb() -> &'static CipherRef {
    static SLOT: OnceLock<Option<Cipher>> = OnceLock::new();
    fetched(&SLOT, "AES-128-ECB", Cipher::aes_128_ecb)
}

/// Pieces of at most 1 GiB (a multiple of the block size) per openssl call.
const PIECE: usize = 1 << 30;

/// Encrypts `buf[..len]` in place; `buf` must extend at least one block beyond `len`.
fn update_in_place(ctx: &mut CipherCtx, buf: &mut [u8], len: usize) -> Result<()> {
    if buf.len() < len.saturating_add(16) {
        return Err(malformed("no room after the encrypted range"));
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(PIECE);
        let written = ctx.cipher_update_inplace(&mut buf[done..], n)?;
        if written != n {
            return Err(malformed("cipher did not process whole blocks"));
        }
        done += n;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Boxes

/// One box: its type and where its header, body and end are in the buffer (the box layer's `BoxRef`).
type Bx = vod_media::bmff::BoxRef;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The boxes laid end to end in `buf[range]`; each must fit in the range (the box layer, strict: the packager
/// encrypts only segments whose every box is well formed).
fn boxes(buf: &[u8], range: Range<usize>) -> Result<Vec<Bx>> {
    vod_media::bmff::boxes(buf, range, vod_media::bmff::Policy::Strict).map_err(|e| malformed(e.to_string()))
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

pub(crate) fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
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
    Avc,
    /// Opus or AAC: samples are encrypted whole.
    Audio,
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
        b"avc1" => (Codec::Avc, 78),
        b"Opus" | b"mp4a" => (Codec::Audio, 28),
        b"encv" | b"enca" => return Err(unsupported("the init segment is already protected")),
        other => return Err(unsupported(format!("sample entry '{}'", fourcc(other)))),
    };
    let entry_children = if entry.end - entry.body >= fixed {
        boxes(init, entry.body + fixed..entry.end)?
    } else {
        return Err(malformed("truncated sample entry"));
    };
    let config_obus = match codec {
        Codec::Av1 => {
            let av1c = one(&entry_children, b"av1C", "av01")?;
            let body = av1c.body(init);
            match body {
                // An empty av1C (ffmpeg 5.1 writes one for some encoders): the samples carry their sequence headers.
                [] => body,
                [0x81, _, _, _, config_obus @ ..] => config_obus,
                _ => return Err(malformed("av1C record without marker/version 1")),
            }
        }
        Codec::Avc => {
            // 4-byte NAL lengths are what the subsample walk reads.
            let avcc = one(&entry_children, b"avcC", "avc1")?;
            if avcc.body(init).get(4).map(|b| b & 3) != Some(3) {
                return Err(unsupported("avcC with NAL lengths other than 4 bytes"));
            }
            &[][..]
        }
        Codec::Audio => {
            match &entry.kind {
                b"mp4a" => one(&entry_children, b"esds", "mp4a")?,
                _ => one(&entry_children, b"dOps", "Opus")?,
            };
            &[][..]
        }
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
        Codec::Av1 | Codec::Avc => (1, 9),
        Codec::Audio => (0, 0),
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

/// Rewrites an init segment for Common Encryption: the sample entry becomes `encv` (AV1) or `enca` (Opus, AAC) and
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
        Codec::Av1 | Codec::Avc => b"encv",
        Codec::Audio => b"enca",
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

fn parse_fragment(segment: &[u8], init: &TrackInfo) -> Result<Fragment> {
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

/// Bytes at the head of an H.264 slice NAL unit (its header included) left clear: the slice header must stay
/// readable (CENC §9.5.2.3 and §10.2); x264's slice headers are a few bytes, and 32 is Apple's SAMPLE-AES rule.
const AVC_CLEAR_HEAD: usize = 32;

/// Subsamples of an H.264 sample (4-byte NAL lengths): only slice data of VCL NAL units (types 1–5) is protected,
/// after each unit's length, header and [`AVC_CLEAR_HEAD`] bytes; other NAL units (SEI, parameter sets) stay
/// clear. `cenc`: the protected part is the unit's last whole 16-byte blocks; `cbcs`: the rest of the unit (the
/// 1:9 pattern leaves a trailing partial block clear).
fn avc_subsamples(sample: &[u8], scheme: Scheme) -> std::result::Result<Layout, String> {
    let units = vod_cmaf::avc::length_prefixed_units(sample).map_err(|e| e.to_string())?;
    let mut subsamples: Vec<(u16, u32)> = Vec::new();
    let (mut pos, mut clear_start) = (0usize, 0usize);
    for unit in units {
        let unit_start = pos + 4;
        let unit_end = unit_start + unit.len();
        pos = unit_end;
        if !matches!(vod_cmaf::avc::nal_type(unit), Some(1..=5)) || unit.len() <= AVC_CLEAR_HEAD {
            continue;
        }
        let body = unit.len() - AVC_CLEAR_HEAD;
        let protected = match scheme {
            Scheme::Cenc => body / 16 * 16,
            Scheme::Cbcs => body,
        };
        if protected == 0 {
            continue;
        }
        push_subsample(&mut subsamples, unit_end - protected - clear_start, protected)?;
        clear_start = unit_end;
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

/// The `saiz`, `saio` and `senc` boxes (in that order, as shaka-packager writes them) appended to a traf that ends
/// `aux_start_in_moof` bytes after the start of its moof; `saio` points at the first `senc` entry. Empty when there
/// is no auxiliary information at all (`cbcs` audio: constant IV, whole samples).
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

/// Encrypts one media segment (see the module doc): the segment is copied once and its protected ranges encrypted
/// in place — `cenc`: AES-128-CTR per sample with an 8-byte IV; `cbcs`: AES-128-CBC restarted from the constant IV
/// at every subsample, 1:9 pattern for AV1, every whole block for audio. AV1 samples get one subsample per tile
/// (only tile data protected, per the AV1-ISOBMFF binding), audio samples are encrypted whole. The traf gets
/// `saiz`, `saio` and `senc` (with subsamples for AV1; none for `cbcs` audio, which has no auxiliary information),
/// and the moof/traf sizes and trun data offsets are fixed. `init` is the clear init segment of the track. `cenc`
/// IVs are `segment_number:32 ‖ sample_index:32` XOR a mask derived from the key id and the init segment: the same
/// request gives the same bytes, and no IV repeats within a track.
pub fn protect_segment(
    init: &[u8],
    segment: &[u8],
    scheme: Scheme,
    key: &[u8; 16],
    kid: &[u8; 16],
    segment_number: u32,
) -> std::result::Result<Vec<u8>, EncryptError> {
    Protector::new(init, scheme, kid)?.protect(segment.to_vec(), key, segment_number)
}

/// [`protect_segment`] on a segment the caller owns: where the boxes do not change (`cbcs` audio, which has no
/// auxiliary information) the samples are encrypted in place and the buffer returned, without a copy.
pub fn protect_segment_owned(
    init: &[u8],
    segment: Vec<u8>,
    scheme: Scheme,
    key: &[u8; 16],
    kid: &[u8; 16],
    segment_number: u32,
) -> std::result::Result<Vec<u8>, EncryptError> {
    Protector::new(init, scheme, kid)?.protect(segment, key, segment_number)
}

/// What protecting a track's media segments needs from its init segment, read once.
#[derive(Debug, Clone)]
struct TrackInfo {
    codec: Codec,
    track_id: u32,
    trex_default_sample_size: Option<u32>,
}

impl From<&Init<'_>> for TrackInfo {
    fn from(info: &Init<'_>) -> Self {
        TrackInfo {
            codec: info.codec,
            track_id: info.track_id,
            trex_default_sample_size: info.trex_default_sample_size,
        }
    }
}

/// One track's protection under one scheme and key id, built once from its init segment (per warm instance, by
/// the packager) so that a segment request only parses its own fragment and runs the cipher.
#[derive(Debug, Clone)]
pub struct Protector {
    track: TrackInfo,
    scheme: Scheme,
    kid: [u8; 16],
    /// `cenc` per-sample IVs derive from it (key id and init segment).
    iv_mask: u64,
    /// AV1: the parser state after the sequence header of `av1C`, cloned for each segment.
    av1: Option<Av1Parser>,
}

impl Protector {
    pub fn new(init: &[u8], scheme: Scheme, kid: &[u8; 16]) -> std::result::Result<Self, EncryptError> {
        let info = parse_init(init)?;
        let av1 = match info.codec {
            Codec::Av1 => Some(
                Av1Parser::with_config_obus(info.config_obus).map_err(|e| EncryptError::Av1 {
                    sample: 0,
                    reason: format!("av1C: {e}"),
                })?,
            ),
            Codec::Avc | Codec::Audio => None,
        };
        Ok(Protector {
            track: TrackInfo::from(&info),
            scheme,
            kid: *kid,
            iv_mask: cenc_iv_mask(kid, init),
            av1,
        })
    }

    /// Protects media segment `segment_number` of the track with `key` (the content key of the key id).
    pub fn protect(
        &self,
        mut segment: Vec<u8>,
        key: &[u8; 16],
        segment_number: u32,
    ) -> std::result::Result<Vec<u8>, EncryptError> {
        if self.scheme == Scheme::Cbcs && self.track.codec == Codec::Audio {
            let frag = parse_fragment(&segment, &self.track)?;
            cbc_whole_samples(key, &cbcs_constant_iv(&self.kid), &mut segment, &frag.samples, 0)?;
            return Ok(segment);
        }
        protect_parsed(self, &segment, key, segment_number)
    }
}

fn protect_parsed(p: &Protector, segment: &[u8], key: &[u8; 16], segment_number: u32) -> Result<Vec<u8>> {
    let (scheme, kid, info) = (p.scheme, &p.kid, &p.track);
    let frag = parse_fragment(segment, info)?;

    // Layout of every sample.
    let layouts: Vec<Layout> = match (info.codec, &p.av1) {
        (Codec::Audio, _) | (Codec::Av1, None) => vec![None; frag.samples.len()],
        (Codec::Avc, _) => frag
            .samples
            .iter()
            .enumerate()
            .map(|(i, r)| {
                avc_subsamples(&segment[r.clone()], scheme).map_err(|reason| EncryptError::Avc { sample: i, reason })
            })
            .collect::<Result<_>>()?,
        (Codec::Av1, Some(prototype)) => {
            let mut parser = prototype.clone();
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
    let ivs: Vec<[u8; 8]> = match scheme {
        Scheme::Cenc => {
            let mask = p.iv_mask;
            (0..frag.samples.len())
                .map(|i| cenc_iv(mask, segment_number, i))
                .collect()
        }
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

    // Output: everything before the moof, the new moof and the rest, copied once; then the protected ranges are
    // encrypted in place. 16 spare bytes at the end: openssl wants room for one more block after any update.
    let total = segment.len() + aux.len();
    let shift = aux.len();
    let mut out = Vec::with_capacity(total + 16);
    out.extend_from_slice(&segment[..frag.moof.start]);
    out.extend_from_slice(&moof);
    out.extend_from_slice(&segment[frag.moof.end..]);
    out.extend_from_slice(&[0u8; 16]);

    let constant_iv = cbcs_constant_iv(kid);
    let (crypt, skip) = cbcs_pattern(info.codec);
    if layouts.iter().all(Option::is_none) {
        match scheme {
            Scheme::Cenc => ctr_whole_samples(key, &mut out, &frag.samples, shift, &ivs)?,
            Scheme::Cbcs => cbc_whole_samples(key, &constant_iv, &mut out, &frag.samples, shift)?,
        }
        out.truncate(total);
        return Ok(out);
    }
    let mut ctx = CipherCtx::new()?;
    let cipher: &CipherRef = match scheme {
        Scheme::Cenc => aes_128_ctr(),
        Scheme::Cbcs => aes_128_cbc(),
    };
    ctx.encrypt_init(Some(cipher), Some(key), None)?;
    ctx.set_padding(false);
    let mut scratch = Vec::new();
    for (i, range) in frag.samples.iter().enumerate() {
        let whole = [(0u16, u32::try_from(range.len()).unwrap_or(u32::MAX))];
        let subsamples: &[(u16, u32)] = layouts[i].as_deref().unwrap_or(&whole);
        if scheme == Scheme::Cenc {
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&ivs[i]);
            ctx.encrypt_init(None, None, Some(&iv))?;
        }
        let mut pos = range.start + shift;
        let sample_end = range.end + shift;
        for &(clear, protected) in subsamples {
            let start = pos + usize::from(clear);
            let end = start + protected as usize;
            if end > sample_end {
                return Err(malformed(format!("sample {i}: subsamples exceed the sample")));
            }
            match scheme {
                Scheme::Cenc => update_in_place(&mut ctx, &mut out[start..], end - start)?,
                Scheme::Cbcs => {
                    ctx.encrypt_init(None, None, Some(&constant_iv))?;
                    let blocks = (end - start) / 16;
                    if crypt == 0 {
                        // Whole-sample (audio): every complete block, chained; a trailing partial block is clear.
                        update_in_place(&mut ctx, &mut out[start..], 16 * blocks)?;
                    } else {
                        // Pattern: `crypt` blocks encrypted, `skip` left clear; CBC chains over the encrypted
                        // blocks, so they are gathered, encrypted in one call and put back.
                        let period = 16 * (usize::from(crypt) + usize::from(skip));
                        scratch.clear();
                        let mut p = start;
                        while p + 16 <= start + 16 * blocks {
                            let n = 16 * usize::from(crypt).min((start + 16 * blocks - p) / 16);
                            scratch.extend_from_slice(&out[p..p + n]);
                            p += period;
                        }
                        let len = scratch.len();
                        scratch.extend_from_slice(&[0u8; 16]);
                        update_in_place(&mut ctx, &mut scratch, len)?;
                        let mut p = start;
                        let mut q = 0;
                        while q < len {
                            let n = (16 * usize::from(crypt)).min(len - q);
                            out[p..p + n].copy_from_slice(&scratch[q..q + n]);
                            q += n;
                            p += period;
                        }
                    }
                }
            }
            pos = end;
        }
    }
    out.truncate(total);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drm;
    use vod_cmaf::{init_segment, media_segment, CodecConfig, Sample, TrackConfig};

    const KID: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ];
    const KEY: [u8; 16] = *b"0123456789abcdef";

    fn uuid(s: &str) -> [u8; 16] {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn opus_track() -> TrackConfig {
        TrackConfig {
            track_id: 2,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48000,
            },
            language: "und".into(),
        }
    }

    fn av1_track() -> TrackConfig {
        TrackConfig {
            track_id: 1,
            timescale: 30,
            // AV1CodecConfigurationRecord: marker/version, profile 0 level 8, main tier 8-bit 4:2:0, no configOBUs.
            codec: CodecConfig::Av1 {
                width: 640,
                height: 360,
                av1c: vec![0x81, 0x08, 0x0c, 0x00],
                colour: None,
            },
            language: "und".into(),
        }
    }

    fn opus_segment(sizes: &[usize]) -> Vec<u8> {
        let samples: Vec<Sample> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Sample {
                data: (0..n).map(|j| (i * 7 + j) as u8).collect(),
                duration: 960,
                is_sync: true,
                composition_offset: 0,
            })
            .collect();
        media_segment(&opus_track(), 3, 0, &samples).unwrap()
    }

    /// Checks that every box in `buf[range]` nests exactly, recursing into the containers we write or modify.
    fn assert_well_formed(buf: &[u8], range: Range<usize>) {
        for b in boxes(buf, range).expect("well-formed boxes") {
            let container: Option<usize> = match &b.kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"moof" | b"traf" | b"sinf" | b"schi" | b"mvex" => {
                    Some(0)
                }
                b"stsd" => Some(8),
                b"encv" => Some(78),
                b"enca" => Some(28),
                _ => None,
            };
            if let Some(skip) = container {
                assert_well_formed(buf, b.body + skip..b.end);
            }
        }
    }

    fn find(buf: &[u8], kind: &[u8; 4]) -> usize {
        buf.windows(4)
            .position(|w| w == kind)
            .unwrap_or_else(|| panic!("{}", fourcc(kind)))
            - 4
    }

    #[test]
    fn aes128_cbc_known_vector_and_padding() {
        // NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first block.
        let key = uuid("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = uuid("000102030405060708090a0b0c0d0e0f");
        let out = aes128_cbc(&key, &iv, &uuid("6bc1bee22e409f96e93d7e117393172a")).unwrap();
        assert_eq!(out.len(), 32, "a whole block of PKCS#7 padding follows");
        assert_eq!(out[..16], uuid("7649abac8119b246cee98e9b12e9197d"));
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let enc = aes128_cbc(&KEY, &iv, &data).unwrap();
            assert_eq!(enc.len(), (len / 16 + 1) * 16);
            let dec = openssl::symm::decrypt(openssl::symm::Cipher::aes_128_cbc(), &KEY, Some(&iv), &enc).unwrap();
            assert_eq!(dec, data);
        }
    }

    #[test]
    fn aes128_cbc_matches_the_openssl_cli() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("vod-aes128-{}.bin", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let iv = [7u8; 16];
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let out = std::process::Command::new("openssl")
            .args(["enc", "-aes-128-cbc", "-K", &hex(&KEY), "-iv", &hex(&iv), "-in"])
            .arg(&path)
            .output()
            .expect("the `openssl` command line tool is needed by this test (Debian: apt-get install openssl)");
        std::fs::remove_file(&path).ok();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(aes128_cbc(&KEY, &iv, &data).unwrap(), out.stdout);
    }

    #[test]
    fn protect_init_layout() {
        for (track, original, protected) in [(av1_track(), b"av01", b"encv"), (opus_track(), b"Opus", b"enca")] {
            let init = init_segment(&track).unwrap();
            let psshs = vec![
                drm::system(drm::DrmId::ClearKey)
                    .pssh(&[KID], None, Scheme::Cenc)
                    .unwrap(),
                drm::system(drm::DrmId::Widevine)
                    .pssh(&[KID], None, Scheme::Cenc)
                    .unwrap(),
            ];
            for scheme in [Scheme::Cenc, Scheme::Cbcs] {
                let out = protect_init(&init, scheme, &KID, &psshs).unwrap();
                assert_well_formed(&out, 0..out.len());
                assert_eq!(
                    out.len(),
                    init.len() + sinf(original, scheme, Codec::Audio, &KID).len() + 52 + 50
                );
                let entry = find(&out, b"stsd") + 16;
                assert_eq!(&out[entry + 4..entry + 8], protected, "sample entry renamed");
                let frma = find(&out, b"frma");
                assert_eq!(&out[frma + 8..frma + 12], original);
                let schm = find(&out, b"schm");
                assert_eq!(be32(&out, schm), Some(20));
                let scheme_type: &[u8; 4] = if scheme == Scheme::Cenc { b"cenc" } else { b"cbcs" };
                assert_eq!(&out[schm + 12..schm + 16], scheme_type);
                assert_eq!(be32(&out, schm + 16), Some(0x0001_0000));
                let tenc = find(&out, b"tenc");
                let t = &out[tenc..];
                match scheme {
                    Scheme::Cenc => {
                        assert_eq!(be32(t, 0), Some(32));
                        assert_eq!(t[8], 0, "version 0");
                        assert_eq!(t[12..16], [0, 0, 1, 8], "protected, 8-byte IVs");
                        assert_eq!(t[16..32], KID);
                    }
                    Scheme::Cbcs => {
                        assert_eq!(be32(t, 0), Some(49));
                        assert_eq!(t[8], 1, "version 1");
                        let pattern = if original == b"av01" { 0x19 } else { 0x00 };
                        assert_eq!(t[12..16], [0, pattern, 1, 0], "pattern, protected, constant IV");
                        assert_eq!(t[16..32], KID);
                        assert_eq!(t[32], 16);
                        assert_eq!(t[33..49], cbcs_constant_iv(&KID));
                    }
                }
                // The pssh boxes are the last children of moov, as given.
                let moov = find(&out, b"moov");
                let moov_end = moov + be32(&out, moov).unwrap() as usize;
                assert_eq!(out[moov_end - 102..moov_end], psshs.concat()[..]);
            }
        }
    }

    #[test]
    fn protect_opus_segment_round_trip() {
        let track = opus_track();
        let init = init_segment(&track).unwrap();
        let sizes = [1usize, 15, 16, 17, 100, 333];
        let seg = opus_segment(&sizes);
        let (clear_moof, clear_frag) = {
            let info = parse_init(&init).unwrap();
            let f = parse_fragment(&seg, &TrackInfo::from(&info)).unwrap();
            (f.moof, f.samples)
        };
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let out = protect_segment(&init, &seg, scheme, &KEY, &KID, 7).unwrap();
            // In place (cbcs) or copied (cenc), an owned segment comes out the same.
            assert_eq!(
                protect_segment_owned(&init, seg.clone(), scheme, &KEY, &KID, 7).unwrap(),
                out
            );
            assert_well_formed(&out, 0..out.len());
            let info = parse_init(&init).unwrap();
            assert!(
                matches!(
                    parse_fragment(&out, &TrackInfo::from(&info)),
                    Err(EncryptError::Unsupported(_))
                ) == (scheme == Scheme::Cenc)
            );
            let mdat = find(&out, b"mdat");
            let payload = &out[mdat + 8..];
            let clear_payload = &seg[clear_frag[0].start..];
            assert_eq!(payload.len(), clear_payload.len());
            let moof = find(&out, b"moof");
            let trun = find(&out, b"trun");
            assert_eq!(moof, clear_moof.start);
            assert_eq!(
                moof + be32(&out, trun + 16).unwrap() as usize,
                mdat + 8,
                "data_offset → mdat payload"
            );
            let mut pos = 0;
            let mut ctx = CipherCtx::new().unwrap();
            for (i, &n) in sizes.iter().enumerate() {
                let enc = &payload[pos..pos + n];
                let clear = &clear_payload[pos..pos + n];
                let mut back = vec![0u8; n + 16];
                match scheme {
                    Scheme::Cenc => {
                        let senc = find(&out, b"senc");
                        assert_eq!(be32(&out, senc + 8), Some(0), "no subsamples for audio");
                        let mut iv = [0u8; 16];
                        iv[..8].copy_from_slice(&out[senc + 16 + 8 * i..senc + 24 + 8 * i]);
                        assert_eq!(iv[..8], cenc_iv(cenc_iv_mask(&KID, &init), 7, i));
                        ctx.decrypt_init(Some(Cipher::aes_128_ctr()), Some(&KEY), Some(&iv))
                            .unwrap();
                        ctx.cipher_update(enc, Some(&mut back)).unwrap();
                    }
                    Scheme::Cbcs => {
                        assert!(!out.windows(4).any(|w| w == b"senc" || w == b"saiz"), "no aux info");
                        let full = n / 16 * 16;
                        ctx.decrypt_init(Some(Cipher::aes_128_cbc()), Some(&KEY), Some(&cbcs_constant_iv(&KID)))
                            .unwrap();
                        ctx.set_padding(false);
                        ctx.cipher_update(&enc[..full], Some(&mut back)).unwrap();
                        back[full..n].copy_from_slice(&enc[full..]);
                        assert_eq!(enc[full..], clear[full..], "partial block clear");
                    }
                }
                assert_eq!(&back[..n], clear, "sample {i} ({scheme:?})");
                pos += n;
            }
        }
    }

    #[test]
    fn av1_subsample_rules() {
        // Sequence header from the av1C of a 64x64 stream is too long to hand-write here; the rules are checked on
        // rav1e output against an independent parser in tests/encrypt_media.rs. Here: clear-run splitting.
        let mut subs = Vec::new();
        push_subsample(&mut subs, 70_000, 32).unwrap();
        assert_eq!(subs, [(65_535, 0), (4_465, 32)]);
    }

    #[test]
    fn splice_grows_nested_boxes() {
        // outer(inner(a) b) ; insert 3 bytes at inner's end, 2 at outer's end.
        let mut buf = Vec::new();
        buf.extend_from_slice(&30u32.to_be_bytes());
        buf.extend_from_slice(b"oute");
        buf.extend_from_slice(&12u32.to_be_bytes());
        buf.extend_from_slice(b"inne");
        buf.extend_from_slice(&[1, 2, 3, 4]);
        buf.extend_from_slice(&10u32.to_be_bytes());
        buf.extend_from_slice(b"bbbb");
        buf.extend_from_slice(&[5, 6]);
        let top = boxes(&buf, 0..buf.len()).unwrap();
        let kids = children(&buf, &top[0]).unwrap();
        let out = splice(
            &buf,
            0..buf.len(),
            &[(20, &[9, 9, 9]), (30, &[8, 8])],
            &[(top[0], 5), (kids[0], 3)],
        )
        .unwrap();
        assert_eq!(be32(&out, 0), Some(35));
        assert_eq!(be32(&out, 8), Some(15));
        assert_eq!(out[20..23], [9, 9, 9]);
        assert_eq!(be32(&out, 23), Some(10));
        assert_eq!(out[33..], [8, 8]);
        assert!(splice(&buf, 0..10, &[(20, &[1])], &[]).is_err());
    }

    #[test]
    fn hostile_boxes_are_errors() {
        let init = init_segment(&opus_track()).unwrap();
        let seg = opus_segment(&[20, 30]);
        // Every truncation of the init and of the segment.
        for n in 0..init.len() {
            assert!(
                protect_init(&init[..n], Scheme::Cenc, &KID, &[]).is_err(),
                "init cut at {n}"
            );
        }
        for n in 0..seg.len() {
            assert!(
                protect_segment(&init, &seg[..n], Scheme::Cenc, &KEY, &KID, 0).is_err(),
                "segment cut at {n}"
            );
        }
        // Zero size, size beyond the buffer, a 64-bit size beyond the buffer, a size smaller than the header.
        let moof = find(&seg, b"moof");
        for size in [0u32, 7, u32::MAX, seg.len() as u32] {
            let mut s = seg.clone();
            s[moof..moof + 4].copy_from_slice(&size.to_be_bytes());
            assert!(matches!(
                protect_segment(&init, &s, Scheme::Cenc, &KEY, &KID, 0),
                Err(EncryptError::Malformed(_))
            ));
        }
        let mut s = seg.clone();
        s[moof..moof + 4].copy_from_slice(&1u32.to_be_bytes());
        assert!(
            protect_segment(&init, &s, Scheme::Cenc, &KEY, &KID, 0).is_err(),
            "largesize"
        );
        // Huge sample counts in trun.
        let trun = find(&seg, b"trun");
        for count in [u32::MAX, 1 << 28, 3] {
            let mut s = seg.clone();
            s[trun + 12..trun + 16].copy_from_slice(&count.to_be_bytes());
            assert!(matches!(
                protect_segment(&init, &s, Scheme::Cenc, &KEY, &KID, 0),
                Err(EncryptError::Malformed(_))
            ));
        }
        // A sample size pointing past the mdat; a data offset pointing into the moof or before the file.
        let mut s = seg.clone();
        s[trun + 24..trun + 28].copy_from_slice(&1_000_000u32.to_be_bytes());
        assert!(protect_segment(&init, &s, Scheme::Cenc, &KEY, &KID, 0).is_err());
        for offset in [0i32, -100_000, i32::MAX] {
            let mut s = seg.clone();
            s[trun + 16..trun + 20].copy_from_slice(&offset.to_be_bytes());
            assert!(
                protect_segment(&init, &s, Scheme::Cenc, &KEY, &KID, 0).is_err(),
                "offset {offset}"
            );
        }
        // Not a pssh box; not an init segment; an unknown codec.
        assert!(protect_init(&init, Scheme::Cenc, &KID, &[vec![0, 0, 0, 8, b'f', b'r', b'e', b'e']]).is_err());
        assert!(protect_init(&seg, Scheme::Cenc, &KID, &[]).is_err());
        let mut other = init.clone();
        let entry = find(&other, b"stsd") + 16;
        other[entry + 4..entry + 8].copy_from_slice(b"ac-3");
        assert!(matches!(
            protect_init(&other, Scheme::Cenc, &KID, &[]),
            Err(EncryptError::Unsupported(_))
        ));
        // An `mp4a` entry without its `esds`.
        other[entry + 4..entry + 8].copy_from_slice(b"mp4a");
        assert!(protect_init(&other, Scheme::Cenc, &KID, &[]).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let init = init_segment(&av1_track()).unwrap();
        let seg = opus_segment(&[40, 50, 60]);
        for i in 0..3000 {
            let len = (next() % 300) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 3 == 0 && data.len() >= 8 {
                // Make it look like boxes: plausible sizes and known types.
                let kinds: [&[u8; 4]; 6] = [b"moof", b"traf", b"trun", b"tfhd", b"mdat", b"moov"];
                data[..4].copy_from_slice(&(len as u32).to_be_bytes());
                data[4..8].copy_from_slice(kinds[i % 6]);
            }
            let _ = protect_init(&data, Scheme::Cbcs, &KID, &[]);
            let _ = protect_segment(&init, &data, Scheme::Cenc, &KEY, &KID, i as u32);
            let _ = protect_segment(&data, &seg, Scheme::Cbcs, &KEY, &KID, i as u32);
            let mut parser = Av1Parser::default();
            let _ = parser.tiles(&data);
            let _ = Av1Parser::with_config_obus(&data).map(|mut p| p.tiles(&data));
        }
    }
}
