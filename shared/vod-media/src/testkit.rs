//! A hostile corpus for tests (feature `testkit`): files built to hang, exhaust or confuse a prober, each with
//! a word its refusal must contain. Used by this crate's tests and by the end-to-end suite, which uploads them.

/// One hostile file.
pub struct HostileFile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// What the refusal says (a substring of the error).
    pub reason: &'static str,
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full(kind: &[u8; 4], fields: &[u32]) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    for f in fields {
        body.extend_from_slice(&f.to_be_bytes());
    }
    bx(kind, &body)
}

fn ftyp() -> Vec<u8> {
    bx(b"ftyp", b"isom\0\0\x02\0isomiso2")
}

/// A file whose `moov` holds `tracks` copies of a track with sample table `stbl`, then an `mdat` of `mdat` bytes.
fn with_tracks(tracks: usize, stbl: &[u8], mdat: usize) -> Vec<u8> {
    let trak = bx(b"trak", &bx(b"mdia", &bx(b"minf", &bx(b"stbl", stbl))));
    let mut file = ftyp();
    file.extend(bx(b"moov", &trak.repeat(tracks)));
    file.extend(bx(b"mdat", &vec![0u8; mdat]));
    file
}

/// Sample tables claiming `samples` samples of `size` bytes (0: sizes listed one by one) in one chunk.
fn claiming(samples: u32, size: u32) -> Vec<u8> {
    [
        full(b"stts", &[1, samples, 1]),
        full(b"stsz", &[size, samples]),
        full(b"stsc", &[1, 1, samples, 1]),
        full(b"stco", &[1, 40]),
    ]
    .concat()
}

/// The corpus.
pub fn hostile_corpus() -> Vec<HostileFile> {
    let free = [0, 0, 0, 8, b'f', b'r', b'e', b'e'];
    let mut million = ftyp();
    for _ in 0..1_000_000 {
        million.extend_from_slice(&free);
    }
    let mut no_moov = ftyp();
    for _ in 0..150_000 {
        no_moov.extend_from_slice(&free);
    }
    let mut too_many = ftyp();
    for _ in 0..300_000 {
        too_many.extend_from_slice(&free);
    }
    too_many.extend(with_tracks(1, &claiming(10, 1), 64)[ftyp().len()..].to_vec());
    let mut nest = Vec::new();
    for _ in 0..20_000 {
        nest = bx(b"udta", &nest);
    }
    let mut deep = ftyp();
    deep.extend(bx(b"moov", &nest));
    let mut polyglot = ftyp();
    polyglot.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
    let mut cut = with_tracks(1, &claiming(10, 1), 64);
    cut.truncate(cut.len() - 20);
    vec![
        HostileFile {
            name: "million-free-boxes.mp4",
            bytes: million,
            reason: "too many top-level boxes",
        },
        HostileFile {
            name: "free-boxes-no-moov.mp4",
            bytes: no_moov,
            reason: "no moov box",
        },
        HostileFile {
            name: "too-many-boxes.mp4",
            bytes: too_many,
            reason: "too many top-level boxes",
        },
        HostileFile {
            name: "sample-bomb.mp4",
            bytes: with_tracks(1, &claiming(2_000_000, 1000), 64),
            reason: "bytes of samples",
        },
        HostileFile {
            name: "track-bomb.mp4",
            bytes: with_tracks(10, &claiming(2_000_000, 1), 4_500_000),
            reason: "more than 4000000 samples",
        },
        HostileFile {
            name: "long-track.mp4",
            bytes: with_tracks(1, &claiming(3_000_000, 1), 64),
            reason: "claims 3000000 samples",
        },
        HostileFile {
            name: "listed-sizes-bomb.mp4",
            bytes: with_tracks(1, &claiming(2_000_000, 0), 64),
            reason: "claims 2000000 entries",
        },
        HostileFile {
            name: "lying-entry-count.mp4",
            bytes: with_tracks(1, &full(b"stts", &[1_000_000_000, 1, 1]), 64),
            reason: "claims 1000000000 entries",
        },
        HostileFile {
            name: "disagreeing-tables.mp4",
            bytes: with_tracks(1, &[full(b"stts", &[1, 10, 1]), full(b"stsz", &[1, 9])].concat(), 64),
            reason: "disagree",
        },
        HostileFile {
            name: "chunk-outside.mp4",
            bytes: with_tracks(
                1,
                &[
                    full(b"stts", &[1, 1, 1]),
                    full(b"stsz", &[1, 1]),
                    full(b"stsc", &[1, 1, 1, 1]),
                    full(b"stco", &[1, 1 << 30]),
                ]
                .concat(),
                64,
            ),
            reason: "past the end of the file",
        },
        HostileFile {
            name: "deep-nesting.mp4",
            bytes: deep,
            reason: "",
        },
        HostileFile {
            name: "polyglot.mp4",
            bytes: polyglot,
            reason: "",
        },
        HostileFile {
            name: "cut-box.mp4",
            bytes: cut,
            reason: "truncated",
        },
    ]
}
