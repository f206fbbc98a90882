//! HTTP Range requests (RFC 9110 §14) on one object: a single byte range, clamped to what one response may carry.

/// The outcome of reading a Range header against an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) Range header: the whole object.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: the range lies outside the object.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges: the first one is served (allowed by RFC 9110,
/// which lets a server answer fewer ranges). Malformed headers are ignored (served in full), as the RFC says.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeOutcome::Full;
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else {
        return RangeOutcome::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // Suffix range: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if start >= size {
                return RangeOutcome::Unsatisfiable;
            }
            let end = end.unwrap_or(u64::MAX).min(size - 1);
            if end < start {
                return RangeOutcome::Full;
            }
            RangeOutcome::Partial { start, end }
        }
        _ => RangeOutcome::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ranges() {
        use RangeOutcome::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(parse_range(Some("bytes=90-"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Partial { start: 0, end: 99 });
        assert_eq!(
            parse_range(Some("bytes=50-1000000"), 100),
            Partial { start: 50, end: 99 }
        );
        assert_eq!(parse_range(Some("bytes=0-0,5-9"), 100), Partial { start: 0, end: 0 });
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-99999999999999999999999999999"), 100), Full);
        assert_eq!(parse_range(Some("bytes=9-5"), 100), Full);
        assert_eq!(parse_range(Some("items=0-5"), 100), Full);
        assert_eq!(parse_range(Some("bytes=x-5"), 100), Full);
        assert_eq!(parse_range(Some("bytes=5"), 100), Full);
    }
}
