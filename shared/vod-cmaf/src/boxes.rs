//! Small box-level helpers shared by the writers: encoding to bytes, brands and the `mdat` header.

use mp4_atom::{Encode, FourCC};

use crate::MuxError;

/// Encodes one box (or several, for a `Vec`) into a new buffer.
pub(crate) fn encode<T: Encode>(atom: &T) -> Result<Vec<u8>, MuxError> {
    let mut out = Vec::new();
    atom.encode(&mut out)?;
    Ok(out)
}

pub(crate) fn fourcc(code: &[u8; 4]) -> FourCC {
    FourCC::new(code)
}

/// The `mdat` box header for a payload of `payload_len` bytes. Written by hand because mp4-atom's box encoder
/// caps boxes at 4 GiB and its `Mdat` needs an owned copy of the whole payload.
pub(crate) fn mdat_header(payload_len: u64) -> Result<Vec<u8>, MuxError> {
    let mut out = Vec::with_capacity(16);
    match u32::try_from(payload_len.saturating_add(8)) {
        Ok(size) => {
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(b"mdat");
        }
        Err(_) => {
            let size = payload_len.checked_add(16).ok_or(MuxError::Overflow("mdat size"))?;
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(b"mdat");
            out.extend_from_slice(&size.to_be_bytes());
        }
    }
    Ok(out)
}

/// Length of [`mdat_header`] for a payload of `payload_len` bytes.
pub(crate) fn mdat_header_len(payload_len: u64) -> u64 {
    if payload_len.saturating_add(8) > u64::from(u32::MAX) {
        16
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdat_headers() {
        assert_eq!(mdat_header(4).unwrap(), [0, 0, 0, 12, b'm', b'd', b'a', b't']);
        let big = u64::from(u32::MAX);
        let h = mdat_header(big).unwrap();
        assert_eq!(h.len() as u64, mdat_header_len(big));
        assert_eq!(&h[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(u64::from_be_bytes(h[8..].try_into().unwrap()), big + 16);
        assert_eq!(mdat_header_len(4), 8);
    }
}
