//! Sidecar caption files a producer uploads — WebVTT, SRT (SubRip) and TTML/DFXP — read into plain-text
//! [`Cue`]s, the normalised form every caption track is stored, streamed and searched in. Reading is bounded
//! (file size, cue count, line length) and every refusal says where and why.
// Hand-written for WebVTT and SRT: both are small line formats, and the crates for them are unmaintained or read
// one of the two only; TTML is XML, read with quick-xml.
use crate::indexing::Cue;

/// Largest caption file read (a feature film's subtitles are well under 1 MiB).
pub const MAX_CAPTION_BYTES: usize = 8 << 20;
/// Most cues in one file.
pub const MAX_CUES: usize = 50_000;
/// Longest text of one cue, in characters.
const MAX_CUE_CHARS: usize = 2_000;
/// Latest cue time accepted (a week): later times are typos.
const MAX_SECS: f64 = 7.0 * 86_400.0;

/// The formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionFormat {
    Vtt,
    Srt,
    /// TTML, DFXP included.
    Ttml,
}

impl CaptionFormat {
    /// The format named by a file extension or a short name (`vtt`, `webvtt`, `srt`, `ttml`, `dfxp`, `xml`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().trim_start_matches('.').to_ascii_lowercase().as_str() {
            "vtt" | "webvtt" => Some(CaptionFormat::Vtt),
            "srt" | "subrip" => Some(CaptionFormat::Srt),
            "ttml" | "dfxp" | "xml" => Some(CaptionFormat::Ttml),
            _ => None,
        }
    }

    /// The format a file's first bytes show (WebVTT's signature, XML, or SRT's numbered blocks).
    pub fn sniff(text: &str) -> Option<Self> {
        let t = text.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with("WEBVTT") {
            Some(CaptionFormat::Vtt)
        } else if t.starts_with('<') {
            Some(CaptionFormat::Ttml)
        } else if t.lines().take(3).any(|l| l.contains("-->")) {
            Some(CaptionFormat::Srt)
        } else {
            None
        }
    }
}

/// Why a caption file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaptionError {
    #[error("the caption file is larger than {MAX_CAPTION_BYTES} bytes")]
    TooLarge,
    #[error("the caption file is not UTF-8 text")]
    NotText,
    #[error("the caption file has no cue")]
    Empty,
    #[error("the caption file has more than {MAX_CUES} cues")]
    TooManyCues,
    #[error("line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

fn invalid(line: usize, reason: impl Into<String>) -> CaptionError {
    CaptionError::Invalid {
        line,
        reason: reason.into(),
    }
}

/// Reads a caption file of `format` into cues sorted by start, each with plain text (markup removed, entities
/// decoded, lines kept).
pub fn parse(bytes: &[u8], format: CaptionFormat) -> Result<Vec<Cue>, CaptionError> {
    if bytes.len() > MAX_CAPTION_BYTES {
        return Err(CaptionError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CaptionError::NotText)?;
    let text = text.trim_start_matches('\u{feff}');
    let mut cues = match format {
        CaptionFormat::Vtt => parse_lines(text, true)?,
        CaptionFormat::Srt => parse_lines(text, false)?,
        CaptionFormat::Ttml => parse_ttml(text)?,
    };
    if cues.is_empty() {
        return Err(CaptionError::Empty);
    }
    cues.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(cues)
}

/// `HH:MM:SS.mmm`, `MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SRT) → seconds.
fn clock(s: &str) -> Option<f64> {
    let s = s.trim();
    let (hms, frac) = match s.rsplit_once(['.', ',']) {
        Some((a, b)) if !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()) => {
            (a, b.parse::<f64>().ok()? / 10f64.powi(b.len() as i32))
        }
        Some(_) => return None,
        None => (s, 0.0),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let nums: Vec<f64> = parts.iter().map(|p| p.parse::<f64>().ok()).collect::<Option<_>>()?;
    let (h, m, sec) = match nums.as_slice() {
        [m, s] => (0.0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if m >= 60.0 || sec >= 60.0 {
        return None;
    }
    let t = h * 3600.0 + m * 60.0 + sec + frac;
    (t <= MAX_SECS).then_some(t)
}

/// A timing line `start --> end [settings]`.
fn timing(line: &str) -> Option<(f64, f64)> {
    let (a, b) = line.split_once("-->")?;
    let end = b.split_whitespace().next()?;
    Some((clock(a)?, clock(end)?))
}

/// WebVTT (`vtt`) or SRT cues: blocks separated by blank lines, each an optional identifier line, a timing line
/// and text lines. WebVTT's header, NOTE, STYLE and REGION blocks are skipped.
fn parse_lines(text: &str, vtt: bool) -> Result<Vec<Cue>, CaptionError> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut i = 0;
    if vtt {
        if !lines.first().is_some_and(|l| l.starts_with("WEBVTT")) {
            return Err(invalid(1, "a WebVTT file starts with WEBVTT"));
        }
        // The header block.
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
    }
    let mut cues = Vec::new();
    while i < lines.len() {
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let block_start = i;
        let mut block = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            block.push(lines[i]);
            i += 1;
        }
        let first = block[0].trim_start();
        if vtt
            && ["NOTE", "STYLE", "REGION"]
                .iter()
                .any(|k| first == *k || first.starts_with(&format!("{k} ")))
        {
            continue;
        }
        let at = block
            .iter()
            .position(|l| l.contains("-->"))
            .ok_or_else(|| invalid(block_start + 1, "a cue needs a timing line (start --> end)"))?;
        if at > 1 {
            return Err(invalid(
                block_start + 1 + at,
                "a cue's timing line comes first or after its identifier",
            ));
        }
        let (start, end) =
            timing(block[at]).ok_or_else(|| invalid(block_start + 1 + at, format!("bad timing {:?}", block[at])))?;
        if end < start {
            return Err(invalid(block_start + 1 + at, "a cue ends before it starts"));
        }
        let text = plain(&block[at + 1..].join("\n"));
        if text.chars().count() > MAX_CUE_CHARS {
            return Err(invalid(
                block_start + 1 + at,
                format!("a cue has more than {MAX_CUE_CHARS} characters"),
            ));
        }
        if !text.trim().is_empty() {
            cues.push(Cue { start, end, text });
            if cues.len() > MAX_CUES {
                return Err(CaptionError::TooManyCues);
            }
        }
    }
    Ok(cues)
}

/// Cue text without markup (`<i>`, `<v Speaker>`, `<c.class>`, `<00:01.000>`, SRT's `<font …>` and `{\an8}`),
/// entities decoded, each line trimmed.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                for d in chars.by_ref() {
                    if d == '>' {
                        break;
                    }
                }
            }
            '{' if chars.peek() == Some(&'\\') => {
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&lrm;", "")
        .replace("&rlm;", "")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// TTML's timing parameters (`ttp:frameRate`, `ttp:frameRateMultiplier`, `ttp:tickRate`).
#[derive(Debug, Clone, Copy)]
struct TtmlClock {
    frame_rate: f64,
    tick_rate: f64,
}

impl TtmlClock {
    /// A TTML time expression: clock time `HH:MM:SS(.fff)`, `HH:MM:SS:FF(.sub)`, or an offset `N(.n)h|m|s|ms|f|t`.
    fn secs(&self, s: &str) -> Option<f64> {
        let s = s.trim();
        let units: [(&str, f64); 6] = [
            ("ms", 0.001),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
            ("f", 1.0 / self.frame_rate),
            ("t", 1.0 / self.tick_rate),
        ];
        for (unit, scale) in units {
            if let Some(n) = s.strip_suffix(unit) {
                if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
                    let t = n.parse::<f64>().ok()? * scale;
                    return (t.is_finite() && t <= MAX_SECS).then_some(t);
                }
            }
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [h, m, sec] => clock(&format!("{h}:{m}:{sec}")).or_else(|| {
                // HH:MM:SS.fraction with more than milliseconds.
                let (whole, frac) = sec.split_once('.')?;
                let base = clock(&format!("{h}:{m}:{whole}"))?;
                Some(base + format!("0.{frac}").parse::<f64>().ok()?)
            }),
            [h, m, sec, frames] => {
                let base = clock(&format!("{h}:{m}:{sec}"))?;
                let f: f64 = frames.split('.').next()?.parse().ok()?;
                Some(base + f / self.frame_rate)
            }
            _ => None,
        }
    }
}

/// TTML/DFXP: every `<p>` with `begin` and `end` (or `dur`), times offset by its `<div>`/`<body>` ancestors'
/// `begin`; `<br/>` is a line break; spans are flattened to their text.
fn parse_ttml(text: &str) -> Result<Vec<Cue>, CaptionError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut clock = TtmlClock {
        frame_rate: 30.0,
        tick_rate: 1.0,
    };
    let mut cues = Vec::new();
    // Begin offsets of the open time containers (body, div), and the cue being read.
    let mut offsets: Vec<f64> = Vec::new();
    let mut current: Option<(f64, f64, String)> = None;
    // Whitespace seen after the cue's last text: one space before the next text on the line.
    let mut pending_space = false;
    // Counted in bytes: a position inside a multi-byte character (a broken file) cannot panic.
    let line_of = |pos: u64| {
        let end = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
        text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    };
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| invalid(line_of(pos), format!("not well-formed XML: {e}")))?;
        let attr = |e: &quick_xml::events::BytesStart, name: &str| -> Option<String> {
            e.attributes().flatten().find_map(|a| {
                let key = a.key.as_ref();
                let local = key.rsplit(|b| *b == b':').next().unwrap_or(key);
                (local == name.as_bytes()).then(|| String::from_utf8_lossy(&a.value).into_owned())
            })
        };
        match event {
            Event::Eof => break,
            // Inside a cue: `<br/>` breaks the line; spans only carry text.
            Event::Start(e) | Event::Empty(e) if current.is_some() => {
                let br = e.local_name().as_ref() == b"br";
                if let (true, Some((_, _, t))) = (br, current.as_mut()) {
                    t.push('\n');
                    pending_space = false;
                }
            }
            Event::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == b"tt" {
                    if let Some(r) = attr(&e, "frameRate").and_then(|v| v.trim().parse::<f64>().ok()) {
                        let mult = attr(&e, "frameRateMultiplier")
                            .and_then(|m| {
                                let (a, b) = m.split_once(' ')?;
                                Some(a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?)
                            })
                            .unwrap_or(1.0);
                        if r > 0.0 && mult > 0.0 {
                            clock.frame_rate = r * mult;
                        }
                    }
                    if let Some(t) = attr(&e, "tickRate").and_then(|v| v.trim().parse::<f64>().ok()) {
                        if t > 0.0 {
                            clock.tick_rate = t;
                        }
                    }
                } else if name == b"body" || name == b"div" {
                    let base = offsets.last().copied().unwrap_or(0.0);
                    let begin = attr(&e, "begin").and_then(|b| clock.secs(&b)).unwrap_or(0.0);
                    offsets.push(base + begin);
                } else if name == b"p" {
                    let line = line_of(pos);
                    let base = offsets.last().copied().unwrap_or(0.0);
                    let begin = attr(&e, "begin")
                        .ok_or_else(|| invalid(line, "a <p> needs begin"))
                        .and_then(|b| clock.secs(&b).ok_or_else(|| invalid(line, format!("bad begin {b:?}"))))?;
                    let end = match (attr(&e, "end"), attr(&e, "dur")) {
                        (Some(end), _) => clock
                            .secs(&end)
                            .ok_or_else(|| invalid(line, format!("bad end {end:?}")))?,
                        (None, Some(d)) => {
                            begin + clock.secs(&d).ok_or_else(|| invalid(line, format!("bad dur {d:?}")))?
                        }
                        (None, None) => return Err(invalid(line, "a <p> needs end or dur")),
                    };
                    if end < begin {
                        return Err(invalid(line, "a cue ends before it starts"));
                    }
                    current = Some((base + begin, base + end, String::new()));
                    pending_space = false;
                }
            }
            Event::Text(t) => {
                if let Some((_, _, s)) = current.as_mut() {
                    let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                    push_text(s, &raw, &mut pending_space);
                    if s.chars().count() > MAX_CUE_CHARS {
                        return Err(invalid(
                            line_of(pos),
                            format!("a cue has more than {MAX_CUE_CHARS} characters"),
                        ));
                    }
                }
            }
            // Character references and XML's five entities; any other (a DTD's) is dropped, never expanded.
            Event::GeneralRef(r) => {
                if let Some((_, _, s)) = current.as_mut() {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        _ => match r.as_ref() {
                            b"amp" => Some('&'),
                            b"lt" => Some('<'),
                            b"gt" => Some('>'),
                            b"quot" => Some('"'),
                            b"apos" => Some('\''),
                            _ => None,
                        },
                    };
                    if let Some(c) = c {
                        push_text(s, &c.to_string(), &mut pending_space);
                    }
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == b"p" && current.is_some() {
                    if let Some((start, end, t)) = current.take() {
                        // Already unescaped by the XML reader: only the lines are tidied (no markup to strip).
                        let text = t
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .collect::<Vec<_>>()
                            .join("\n");
                        if !text.is_empty() {
                            cues.push(Cue { start, end, text });
                            if cues.len() > MAX_CUES {
                                return Err(CaptionError::TooManyCues);
                            }
                        }
                    }
                } else if (name == b"body" || name == b"div") && current.is_none() {
                    offsets.pop();
                }
            }
            _ => {}
        }
    }
    Ok(cues)
}

/// Appends XML text to a cue's: runs of whitespace (the file's line breaks included) are one space, and `<br/>`
/// alone breaks lines.
fn push_text(cue: &mut String, raw: &str, pending_space: &mut bool) {
    let words: Vec<&str> = raw.split_whitespace().collect();
    if words.is_empty() {
        *pending_space |= !raw.is_empty();
        return;
    }
    if (*pending_space || raw.starts_with(char::is_whitespace)) && !cue.is_empty() && !cue.ends_with('\n') {
        cue.push(' ');
    }
    cue.push_str(&words.join(" "));
    *pending_space = raw.ends_with(char::is_whitespace);
}

#[cfg(test)]
mod tests;
