//! The one ISO-BMFF box layer: a box header parsed with every size checked against what holds it, and walks of
//! boxes laid end to end under an explicit [`Policy`]. The probe walks a file's top-level boxes (through
//! [`header`]) and the boxes inside `moov` (lenient: a malformed box ends the walk, the ones before it are kept);
//! the packager walks the init and media segments it encrypts (strict: any malformed box is an error).
use std::ops::Range;

/// What a walk does with a malformed box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An error.
    Strict,
    /// The walk ends there; the boxes before it are kept.
    Lenient,
}

/// Why a box header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    /// It claims more bytes than what holds it has, or is cut short.
    #[error("{0}")]
    Truncated(String),
    /// It is malformed (a size below its header's).
    #[error("{0}")]
    Corrupt(String),
}

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: [u8; 4],
    /// Total size, header included.
    pub size: u64,
    /// 8, or 16 with a 64-bit size.
    pub len: u64,
}

/// The box's type as text.
pub fn fourcc(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The header of the box whose first bytes are `head` (16 are enough), at `offset` with `left` bytes left in what
/// holds it. A size of 0 means "to the end" where `zero_to_end` (a file's last box), and is malformed elsewhere.
pub fn header(head: &[u8], offset: u64, left: u64, zero_to_end: bool) -> Result<Header, BoxError> {
    if left < 8 || head.len() < 8 {
        return Err(BoxError::Truncated(format!("box header cut at offset {offset}")));
    }
    let size32 = be32(head, 0).unwrap_or(0);
    let mut kind = [0u8; 4];
    kind.copy_from_slice(&head[4..8]);
    let name = fourcc(&kind);
    let (size, len) = match size32 {
        0 if zero_to_end => (left, 8),
        0 => return Err(BoxError::Corrupt(format!("'{name}' box of size 0 at offset {offset}"))),
        1 => {
            let large = be64(head, 8)
                .filter(|_| left >= 16)
                .ok_or_else(|| BoxError::Truncated(format!("'{name}' largesize cut at offset {offset}")))?;
            (large, 16)
        }
        n => (u64::from(n), 8),
    };
    if size < len {
        return Err(BoxError::Corrupt(format!(
            "'{name}' box at offset {offset} has size {size}"
        )));
    }
    if size > left {
        return Err(BoxError::Truncated(format!(
            "'{name}' box at offset {offset} claims {size} bytes, {left} left"
        )));
    }
    Ok(Header { kind, size, len })
}

/// Where one box lies in a buffer: its type, its first byte, its body's first byte and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef {
    pub kind: [u8; 4],
    pub start: usize,
    pub body: usize,
    pub end: usize,
}

impl BoxRef {
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.body..self.end]
    }
}

/// The boxes laid end to end in `buf[range]`, each inside the range. Sizes of 0 are malformed (only a file's
/// last top-level box may run to the end, and files are walked through [`header`]).
pub fn boxes(buf: &[u8], range: Range<usize>, policy: Policy) -> Result<Vec<BoxRef>, BoxError> {
    if range.end > buf.len() || range.start > range.end {
        return Err(BoxError::Corrupt("box range outside the buffer".into()));
    }
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let left = range.end - pos;
        let parsed = if left < 8 {
            Err(BoxError::Corrupt(format!("{left} stray bytes at offset {pos}")))
        } else {
            header(&buf[pos..range.end], pos as u64, left as u64, false)
        };
        let h = match (parsed, policy) {
            (Ok(h), _) => h,
            (Err(e), Policy::Strict) => return Err(e),
            (Err(_), Policy::Lenient) => break,
        };
        // `size <= left`, which is a usize.
        let (size, len) = (h.size as usize, h.len as usize);
        out.push(BoxRef {
            kind: h.kind,
            start: pos,
            body: pos + len,
            end: pos + size,
        });
        pos += size;
    }
    Ok(out)
}

/// The boxes inside `parent`'s body.
pub fn children(buf: &[u8], parent: &BoxRef, policy: Policy) -> Result<Vec<BoxRef>, BoxError> {
    boxes(buf, parent.body..parent.end, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_policies() {
        let b = [0, 0, 0, 12, b'a', b'b', b'c', b'd', b'1', b'2', b'3', b'4'];
        assert_eq!(
            header(&b, 0, 12, false).unwrap(),
            Header {
                kind: *b"abcd",
                size: 12,
                len: 8
            }
        );
        assert!(matches!(header(&b, 0, 11, false), Err(BoxError::Truncated(_))));
        assert!(matches!(
            header(&[0, 0, 0, 4, b'a', b'b', b'c', b'd'], 0, 8, false),
            Err(BoxError::Corrupt(_))
        ));
        assert!(matches!(
            header(&[0, 0, 0, 0, b'a', b'b', b'c', b'd'], 0, 100, false),
            Err(BoxError::Corrupt(_))
        ));
        assert_eq!(
            header(&[0, 0, 0, 0, b'a', b'b', b'c', b'd'], 0, 100, true)
                .unwrap()
                .size,
            100
        );
        let mut large = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        large.extend_from_slice(&20u64.to_be_bytes());
        large.extend_from_slice(&[0; 4]);
        assert_eq!(
            header(&large, 0, 20, false).unwrap(),
            Header {
                kind: *b"mdat",
                size: 20,
                len: 16
            }
        );
        // A good box, then garbage: lenient keeps the first, strict refuses.
        let mut two = b.to_vec();
        two.extend_from_slice(&[0xff; 9]);
        assert_eq!(boxes(&two, 0..two.len(), Policy::Lenient).unwrap().len(), 1);
        assert!(boxes(&two, 0..two.len(), Policy::Strict).is_err());
        assert!(
            boxes(&two, 0..100, Policy::Lenient).is_err(),
            "a range outside the buffer"
        );
    }
}
