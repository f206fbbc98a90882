//! HDR10 static metadata in sample entries: the `mdcv` (mastering display colour volume) and `clli` (content light
//! level) boxes of ISO/IEC 23001-8 / CMAF, appended to a video sample entry of an encoded `moov`, every enclosing
//! box's size grown to match.
//!
//! Hand-written: mp4-atom 0.17's `av01` entry has no field for either box (it writes `colr`, which we use).

use crate::{CodecConfig, Colour, MuxError, TrackConfig};

/// The `mdcv` and `clli` boxes of a colour, in that order (empty without HDR metadata).
fn boxes(c: &Colour) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(m) = c.mastering {
        let mut body = Vec::with_capacity(24);
        // The box lists the primaries green, blue, red (as HEVC's SEI does).
        for (x, y) in [m.primaries[1], m.primaries[2], m.primaries[0], m.white_point] {
            body.extend(x.to_be_bytes());
            body.extend(y.to_be_bytes());
        }
        body.extend(m.max_luminance.to_be_bytes());
        body.extend(m.min_luminance.to_be_bytes());
        push_box(&mut out, b"mdcv", &body);
    }
    if let Some(l) = c.light {
        let mut body = l.max_cll.to_be_bytes().to_vec();
        body.extend(l.max_fall.to_be_bytes());
        push_box(&mut out, b"clli", &body);
    }
    out
}

fn push_box(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend(((8 + body.len()) as u32).to_be_bytes());
    out.extend(kind);
    out.extend(body);
}

/// The boxes a track's sample entry gets, if any.
fn track_boxes(track: &TrackConfig) -> Vec<u8> {
    match &track.codec {
        CodecConfig::Av1 { colour: Some(c), .. } => boxes(c),
        _ => Vec::new(),
    }
}

/// Bytes of a box header at `at` of `buf`: (size, kind), or None past the end; 64-bit and open-ended sizes are
/// refused (a `moov` we encoded has neither).
fn header(buf: &[u8], at: usize) -> Result<Option<(usize, [u8; 4])>, MuxError> {
    let Some(h) = buf.get(at..at + 8) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if size < 8 || at + size > buf.len() {
        return Err(MuxError::InvalidConfig(
            "a box of the encoded moov has a bad size".into(),
        ));
    }
    Ok(Some((size, [h[4], h[5], h[6], h[7]])))
}

/// The offsets of the children of box `kind` under the box at `parent` (of `size`), `skip` bytes after its
/// header (full box fields, sample entry fields).
fn children(buf: &[u8], parent: usize, size: usize, skip: usize) -> Result<Vec<(usize, usize, [u8; 4])>, MuxError> {
    let mut out = Vec::new();
    let mut at = parent + 8 + skip;
    while at < parent + size {
        let Some((s, kind)) = header(buf, at)? else { break };
        out.push((at, s, kind));
        at += s;
    }
    Ok(out)
}

/// Appends each video track's HDR boxes to the end of its sample entry in an encoded `moov` (the `trak`s in the
/// order of `tracks`) and grows the sizes of the entry and every box around it.
pub(crate) fn add_hdr_boxes(mut moov: Vec<u8>, tracks: &[&TrackConfig]) -> Result<Vec<u8>, MuxError> {
    for (index, track) in tracks.iter().enumerate() {
        let extra = track_boxes(track);
        if extra.is_empty() {
            continue;
        }
        let Some((moov_size, _)) = header(&moov, 0)? else {
            return Err(MuxError::InvalidConfig("empty moov".into()));
        };
        let traks: Vec<_> = children(&moov, 0, moov_size, 0)?
            .into_iter()
            .filter(|c| &c.2 == b"trak")
            .collect();
        let Some(&trak) = traks.get(index) else {
            return Err(MuxError::InvalidConfig(format!("no trak {index} in the moov")));
        };
        // moov > trak > mdia > minf > stbl > stsd (full box + entry count) > first sample entry.
        let mut path = vec![(0usize, moov_size), (trak.0, trak.1)];
        for (kind, skip) in [
            (Some(b"mdia"), 0),
            (Some(b"minf"), 0),
            (Some(b"stbl"), 0),
            (Some(b"stsd"), 0),
            (None, 8),
        ] {
            let &(at, size) = path.last().unwrap_or(&(0, 0));
            let inner = children(&moov, at, size, skip)?;
            let found = match kind {
                None => inner.first().copied(),
                Some(kind) => inner.into_iter().find(|c| &c.2 == kind),
            };
            let Some((child_at, child_size, _)) = found else {
                return Err(MuxError::InvalidConfig("no sample entry in the moov".into()));
            };
            path.push((child_at, child_size));
        }
        let &(entry_at, entry_size) = path.last().unwrap_or(&(0, 0));
        moov.splice(entry_at + entry_size..entry_at + entry_size, extra.iter().copied());
        for (at, size) in path {
            let grown = u32::try_from(size + extra.len()).map_err(|_| MuxError::Overflow("moov size"))?;
            moov[at..at + 4].copy_from_slice(&grown.to_be_bytes());
        }
    }
    Ok(moov)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hdr10() -> Colour {
        Colour {
            primaries: 9,
            transfer: 16,
            matrix: 9,
            full_range: false,
            mastering: Some(crate::MasteringDisplay {
                primaries: [(34000, 16000), (13250, 34500), (7500, 3000)],
                white_point: (15635, 16450),
                max_luminance: 10_000_000,
                min_luminance: 1,
            }),
            light: Some(crate::ContentLight {
                max_cll: 1000,
                max_fall: 400,
            }),
        }
    }

    #[test]
    fn mdcv_and_clli_follow_the_standard_layout() {
        let b = boxes(&hdr10());
        assert_eq!(&b[4..8], b"mdcv");
        assert_eq!(u32::from_be_bytes([b[0], b[1], b[2], b[3]]), 32);
        // Green first: (13250, 34500).
        assert_eq!(&b[8..12], &[0x33, 0xC2, 0x86, 0xC4]);
        assert_eq!(&b[32 + 4..32 + 8], b"clli");
        assert_eq!(&b[32 + 8..32 + 12], &[0x03, 0xE8, 0x01, 0x90]);
        assert_eq!(b.len(), 32 + 12);
        let plain = Colour {
            mastering: None,
            light: None,
            ..hdr10()
        };
        assert!(boxes(&plain).is_empty());
    }

    #[test]
    fn an_hdr_init_segment_holds_the_boxes_in_its_av01_entry() {
        let track = TrackConfig {
            track_id: 1,
            timescale: 90000,
            codec: CodecConfig::Av1 {
                width: 64,
                height: 32,
                av1c: vec![0x81, 0x00, 0x0c, 0x00],
                colour: Some(hdr10()),
            },
            language: "und".into(),
        };
        let init = crate::init_segment(&track).expect("init");
        let at = |kind: &[u8]| init.windows(4).position(|w| w == kind).expect("box");
        // Inside av01 (after its colr), before the sample table's next box.
        assert!(at(b"av01") < at(b"colr") && at(b"colr") < at(b"mdcv") && at(b"mdcv") < at(b"clli"));
        assert!(at(b"clli") < at(b"stts"));
        // Every size still adds up: mp4-atom reads the whole file back.
        let mut buf = &init[..];
        while !buf.is_empty() {
            <mp4_atom::Any as mp4_atom::Decode>::decode(&mut buf).expect("a box");
        }
    }
}
