//! Indexing: turns the words the speech engine recognized in an asset's audio into a transcript, captions (WebVTT,
//! segmented WebVTT for HLS, TTML/IMSC1), keywords and an in-video search index, and scores recognition quality
//! (word error rate). Pure domain logic: no I/O, and no panics on any input.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Default maximum characters of a caption cue: two lines of [`CAPTION_LINE_CHARS`].
pub const DEFAULT_CUE_CHARS: usize = 84;
/// Default maximum time a caption cue covers, in seconds.
pub const DEFAULT_CUE_SECS: f64 = 6.0;
/// Maximum characters of one caption line.
pub const CAPTION_LINE_CHARS: usize = 42;
/// A pause between two words at least this long (seconds) starts a new cue.
pub const CUE_PAUSE_SECS: f64 = 1.0;
/// Minimum time a cue stays on screen (seconds), unless the next cue starts earlier.
pub const MIN_CUE_SECS: f64 = 0.5;
/// Maximum characters of a search query.
pub const MAX_QUERY_CHARS: usize = 200;
/// Maximum words of a search query.
pub const MAX_QUERY_WORDS: usize = 10;
const CONTEXT_WORDS: usize = 5; // words of context on each side of a search match
const KEYWORD_TIMES: usize = 20; // occurrence times kept per keyword

/// One recognized word: times in seconds from the asset start, confidence in 0..=1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f32,
}

/// What one index task recognized: words of its decoded window; it owns the words that START in [start, end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTranscript {
    pub start: f64,
    pub end: f64,
    pub words: Vec<Word>,
}

/// The transcript of an asset: its spoken language, its duration (seconds) and its words in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub duration: f64,
    pub words: Vec<Word>,
}

/// One caption cue: shown from `start` to `end` (seconds); `text` has at most two lines joined with '\n'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

impl Transcript {
    /// Merges chunk results: keeps each chunk's words that start within its own [start, end) (chunks are decoded
    /// with overlap), sorts by start, drops non-finite/negative times, clamps end >= start and to duration. Also
    /// drops empty words and filler tokens ("<sil>", "[noise]", "++um++"), strips alternate-pronunciation markers
    /// ("read(2)" -> "read"), clamps confidence to 0..=1, and drops a word that the neighbouring chunk also heard,
    /// timed across their boundary (same term, overlapping times). An unusable duration (non-finite or negative)
    /// becomes the last word's end.
    pub fn merge(language: &str, duration: f64, chunks: Vec<ChunkTranscript>) -> Transcript {
        let known_duration = non_negative(duration);
        let mut owned: Vec<(usize, Word)> = Vec::new();
        for (chunk_no, chunk) in chunks.into_iter().enumerate() {
            let (from, to) = (chunk.start, chunk.end);
            for word in chunk.words.into_iter().filter(|w| w.start >= from && w.start < to) {
                owned.extend(clean_word(word, known_duration).map(|w| (chunk_no, w)));
            }
        }
        owned.sort_by(|(_, a), (_, b)| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
        let mut words: Vec<Word> = Vec::with_capacity(owned.len());
        let mut last_chunk = None;
        for (chunk_no, word) in owned {
            let heard_twice = last_chunk.is_some_and(|c| c != chunk_no)
                && words.last().is_some_and(|prev| {
                    word.start < prev.end && normalize_term(&prev.text) == normalize_term(&word.text)
                });
            if !heard_twice {
                last_chunk = Some(chunk_no);
                words.push(word);
            }
        }
        let duration = known_duration.unwrap_or_else(|| words.iter().map(|w| w.end).fold(0.0, f64::max));
        let language = language.trim().to_string();
        Transcript {
            language,
            duration,
            words,
        }
    }

    /// The transcript as plain text: words joined by single spaces.
    pub fn text(&self) -> String {
        let words = self.words.iter().map(|w| w.text.trim());
        words.filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// Caption cues: words grouped into cues of at most `max_chars` characters (default use 84 = two lines of 42)
    /// and at most `max_secs` (default 6.0) long; a pause >= 1.0 s between words starts a new cue; text of a cue is
    /// split into at most two lines of <= 42 chars at word boundaries when longer than 42 (joined with '\n'). Cue
    /// start = first word start, end = last word end (at least 0.5 s after start but never overlapping the next
    /// cue's start, nor past the duration). A cue always holds at least one word (a word longer than the limits
    /// gets a cue of its own); an unusable `max_secs` means the default; words without usable times are skipped.
    pub fn cues(&self, max_chars: usize, max_secs: f64) -> Vec<Cue> {
        let max_secs = non_negative(max_secs).filter(|s| *s > 0.0).unwrap_or(DEFAULT_CUE_SECS);
        let mut words: Vec<(f64, f64, &str)> = (self.words.iter())
            .filter_map(|w| timed(w).map(|(start, end)| (start, end, w.text.trim())))
            .filter(|(_, _, text)| !text.is_empty())
            .collect();
        words.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut groups: Vec<CueWords> = Vec::new();
        for (start, end, text) in words {
            match groups.last_mut() {
                Some(group) if group.accepts(start, end, text, max_chars, max_secs) => {
                    group.words.push(text);
                    group.end = group.end.max(end);
                }
                _ => groups.push(CueWords {
                    start,
                    end,
                    words: vec![text],
                }),
            }
        }
        let limit = finite(self.duration).unwrap_or(f64::INFINITY);
        let next_starts = groups.iter().skip(1).map(|g| Some(g.start)).chain([None]);
        let cues = groups.iter().zip(next_starts).map(|(group, next)| {
            let start = group.start;
            let end = (start + MIN_CUE_SECS).min(limit).max(group.end);
            let end = next.map_or(end, |next| end.min(next)).max(start);
            let text = caption_lines(&group.words).unwrap_or_else(|| group.words.join(" "));
            Cue { start, end, text }
        });
        cues.collect()
    }
}

/// Words being gathered into one cue.
struct CueWords<'a> {
    start: f64,
    end: f64,
    words: Vec<&'a str>,
}

impl CueWords<'_> {
    /// Whether the word can join this cue without breaking the pause, length and layout rules.
    fn accepts(&self, start: f64, end: f64, text: &str, max_chars: usize, max_secs: f64) -> bool {
        let chars = self.words.iter().map(|w| w.chars().count() + 1).sum::<usize>() + text.chars().count();
        start - self.end < CUE_PAUSE_SECS
            && end - self.start <= max_secs
            && chars <= max_chars
            && caption_lines(&[self.words.as_slice(), &[text]].concat()).is_some()
    }
}

/// Lays words out as at most two lines of at most [`CAPTION_LINE_CHARS`], as balanced as possible (a shorter first
/// line on ties); None when they do not fit.
fn caption_lines(words: &[&str]) -> Option<String> {
    let lens: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
    let total = lens.iter().sum::<usize>() + lens.len().saturating_sub(1);
    if total <= CAPTION_LINE_CHARS {
        return Some(words.join(" "));
    }
    let mut best: Option<(usize, usize)> = None; // (longest line, words on the first line)
    let mut first = 0;
    for (k, len) in lens.iter().enumerate().take(lens.len().saturating_sub(1)) {
        first += len + usize::from(k > 0);
        let longest = first.max(total.saturating_sub(first + 1));
        if longest <= CAPTION_LINE_CHARS && best.is_none_or(|(l, _)| longest < l) {
            best = Some((longest, k + 1));
        }
    }
    let (one, two) = words.split_at_checked(best?.1)?;
    Some(format!("{}\n{}", one.join(" "), two.join(" ")))
}

/// A whole WebVTT file ("WEBVTT\n\n" then cues "HH:MM:SS.mmm --> HH:MM:SS.mmm\ntext\n\n"). Cue text escaped per
/// WebVTT (&, <, > as &amp; &lt; &gt;); "-->" can never appear in text. Cues are written in start order; blank
/// lines inside a cue's text are dropped (they would end the cue) and cues without text are skipped.
pub fn webvtt(cues: &[Cue]) -> String {
    vtt_with_cues("WEBVTT\n\n", cues.iter())
}

/// One segment of segmented WebVTT for an HLS subtitles playlist covering [seg_start, seg_end): header
/// "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n", then every cue that overlaps the segment (cue times
/// unchanged, absolute; a zero-length cue belongs to the segment it starts in). An empty segment is still a valid
/// file.
pub fn webvtt_segment(cues: &[Cue], seg_start: f64, seg_end: f64) -> String {
    let overlapping = cues.iter().filter(|cue| {
        let (start, end) = cue_times(cue);
        start < seg_end && (end > seg_start || start >= seg_start)
    });
    vtt_with_cues("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n", overlapping)
}

fn vtt_with_cues<'a>(header: &str, cues: impl Iterator<Item = &'a Cue>) -> String {
    let mut out = header.to_string();
    let mut cues: Vec<&Cue> = cues.collect();
    cues.sort_by(|a, b| cue_times(a).0.total_cmp(&cue_times(b).0));
    for cue in cues {
        let lines: Vec<String> = cue_lines(&cue.text).map(|line| escape(line, false)).collect();
        let (start, end) = cue_times(cue);
        if !lines.is_empty() {
            out.push_str(&format!(
                "{} --> {}\n{}\n\n",
                timestamp(start),
                timestamp(end),
                lines.join("\n")
            ));
        }
    }
    out
}

/// TTML (IMSC1 text profile): XML declaration, `<tt>` with `xml:lang`, `ttp:timeBase="media"` and the IMSC1 text
/// profile, a head with one style and one bottom region, then `<p begin=… end=…>line1<br/>line2</p>` per cue in a
/// single `<div>`. XML-escaped text; language tag validated to [A-Za-z0-9-] (at most 35 chars) else "und".
pub fn ttml(cues: &[Cue], language: &str) -> String {
    let tag = language.trim();
    let valid = !tag.is_empty() && tag.len() <= 35 && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let mut out = format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<tt xmlns=\"http://www.w3.org/ns/ttml\" xmlns:ttp=\"http://www.w3.org/ns/ttml#parameter\" ",
            "xmlns:tts=\"http://www.w3.org/ns/ttml#styling\" xml:lang=\"{}\" ttp:timeBase=\"media\" ",
            "ttp:profile=\"http://www.w3.org/ns/ttml/profile/imsc1/text\">\n",
            "<head><styling><style xml:id=\"caption\" tts:fontFamily=\"proportionalSansSerif\" tts:fontSize=\"100%\" ",
            "tts:textAlign=\"center\" tts:color=\"white\" tts:backgroundColor=\"#000000b3\"/></styling>",
            "<layout><region xml:id=\"bottom\" tts:origin=\"10% 80%\" tts:extent=\"80% 15%\" ",
            "tts:displayAlign=\"after\"/></layout></head>\n",
            "<body region=\"bottom\" style=\"caption\"><div>\n"
        ),
        if valid { tag } else { "und" }
    );
    for cue in cues {
        let lines: Vec<String> = cue_lines(&cue.text).map(|line| escape(line, true)).collect();
        let (begin, end) = cue_times(cue);
        let (begin, end) = (timestamp(begin), timestamp(end));
        if !lines.is_empty() {
            let text = lines.join("<br/>");
            out.push_str(&format!("<p begin=\"{begin}\" end=\"{end}\">{text}</p>\n"));
        }
    }
    out.push_str("</div></body>\n</tt>\n");
    out
}

/// Non-blank lines of a cue's text, trimmed.
fn cue_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', '\r']).map(str::trim).filter(|line| !line.is_empty())
}

/// Escapes a line of WebVTT cue text (&, <, >) or, with `xml`, of XML text (also quotes); control characters and
/// non-characters XML forbids become spaces.
fn escape(line: &str, xml: bool) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if xml => out.push_str("&quot;"),
            '\'' if xml => out.push_str("&apos;"),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// "HH:MM:SS.mmm" (hours at least two digits), rounded to milliseconds; negative/non-finite times are 0.
fn timestamp(secs: f64) -> String {
    let ms = non_negative(secs).map_or(0, |s| (s * 1000.0).round() as u64);
    let (hours, minutes, seconds) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    format!("{hours:02}:{minutes:02}:{seconds:02}.{:03}", ms % 1000)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn non_negative(x: f64) -> Option<f64> {
    finite(x).filter(|x| *x >= 0.0)
}

/// A cue's times, made usable: start >= 0, end >= start.
fn cue_times(cue: &Cue) -> (f64, f64) {
    let start = non_negative(cue.start).unwrap_or(0.0);
    (start, finite(cue.end).map_or(start, |end| end.max(start)))
}

/// A word's times when its start is usable (finite, >= 0), with the end made finite and >= start.
fn timed(word: &Word) -> Option<(f64, f64)> {
    let start = non_negative(word.start)?;
    Some((start, finite(word.end).map_or(start, |end| end.max(start))))
}

fn clean_confidence(confidence: f32) -> f32 {
    // NaN fails the comparison and becomes 0.
    if confidence >= 0.0 {
        confidence.min(1.0)
    } else {
        0.0
    }
}

fn clean_word(word: Word, duration: Option<f64>) -> Option<Word> {
    let (start, end) = timed(&word)?;
    let text = strip_alternate(word.text.trim()).to_string();
    if text.is_empty() || is_filler(&text) {
        return None;
    }
    let limit = duration.unwrap_or(f64::INFINITY);
    let (start, end, confidence) = (start.min(limit), end.min(limit), clean_confidence(word.confidence));
    Some(Word {
        text,
        start,
        end,
        confidence,
    })
}

/// Filler tokens of the recognizer: silences, sentence marks, noises ("<sil>", "</s>", "[noise]", "++um++").
fn is_filler(token: &str) -> bool {
    token.starts_with(['<', '[', '+'])
}

/// Drops a pocketsphinx alternate-pronunciation suffix: "read(2)" -> "read".
fn strip_alternate(token: &str) -> &str {
    match token.strip_suffix(')').and_then(|body| body.rsplit_once('(')) {
        Some((word, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => word,
        _ => token,
    }
}

/// Normalizes a word for indexing and search: lowercase, strips leading/trailing non-alphanumerics (keeps inner
/// apostrophes, e.g. "don't"; a typographic ’ becomes '), drops pocketsphinx alternate-pronunciation suffixes like
/// "read(2)" -> "read", returns None for empty results or filler tokens ("<s>", "</s>", "<sil>", "[noise]",
/// "++garbage++" etc. — anything starting with '<', '[' or '+').
pub fn normalize_term(word: &str) -> Option<String> {
    let token = word.trim();
    if is_filler(token) {
        return None;
    }
    let term: String = (strip_alternate(token)
        .trim_matches(|c: char| !c.is_alphanumeric())
        .chars())
    .map(|c| if c == '\u{2019}' { '\'' } else { c })
    .flat_map(char::to_lowercase)
    .collect();
    (!term.is_empty()).then_some(term)
}

/// Common English stop words (and spoken fillers) left out of keywords, in normalized form, separated by spaces.
const STOP_WORDS: &str =
    "a about above actually after again against all also am an and any are aren't as at be because been before \
     being below between both but by can can't could couldn't did didn't do does doesn't doing don't down during \
     each even few for from further get going gonna got had hadn't has hasn't have haven't having he he's her here \
     hers herself him himself his how i i'd i'll i'm i've if in into is isn't it it's its itself just know let's \
     like me might more most much must my myself no nor not now of off oh okay on once only or other our ours \
     ourselves out over own really right same she she's should shouldn't so some such than that that's the their \
     theirs them themselves then there there's these they they're they've this those through to too uh um under \
     until up very was wasn't we we're we've well were weren't what when where which while who whom why will with \
     won't would wouldn't yeah yes you you're you've your yours yourself yourselves";

/// A keyword of an asset: a normalized term, how often it is spoken, and when (start of the first occurrences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyword {
    pub text: String,
    pub count: u32,
    pub times: Vec<f64>,
}

/// Top `n` keywords: normalized terms that are not English stop words and have >= 3 chars, ranked by count then by
/// total confidence, ties alphabetical; times = start of each occurrence in time order (first 20).
pub fn keywords(t: &Transcript, n: usize) -> Vec<Keyword> {
    let stop: HashSet<&str> = STOP_WORDS.split_whitespace().collect();
    let mut tally: HashMap<String, (u32, f64, Vec<f64>)> = HashMap::new();
    for word in &t.words {
        let term = normalize_term(&word.text).filter(|t| t.chars().count() >= 3 && !stop.contains(t.as_str()));
        if let (Some((start, _)), Some(term)) = (timed(word), term) {
            let (count, confidence, times) = tally.entry(term).or_default();
            *count = count.saturating_add(1);
            *confidence += f64::from(clean_confidence(word.confidence));
            times.push(start);
        }
    }
    let mut ranked: Vec<_> = tally.into_iter().collect();
    ranked.sort_by(|(a, (count_a, conf_a, _)), (b, (count_b, conf_b, _))| {
        count_b.cmp(count_a).then(conf_b.total_cmp(conf_a)).then(a.cmp(b))
    });
    let top = ranked.into_iter().take(n).map(|(text, (count, _, mut times))| {
        times.sort_by(f64::total_cmp);
        times.truncate(KEYWORD_TIMES);
        Keyword { text, count, times }
    });
    top.collect()
}

/// The search index of one asset: normalized term -> occurrences (start, end, confidence) in time order, terms
/// sorted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchIndex {
    pub terms: BTreeMap<String, Vec<Occurrence>>,
}

/// One occurrence of a term in an asset: when it is spoken (seconds) and how sure the recognizer was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: f64,
    pub end: f64,
    pub confidence: f32,
}

impl SearchIndex {
    /// Indexes every word of the transcript that has a term and usable times.
    pub fn build(t: &Transcript) -> SearchIndex {
        let mut terms: BTreeMap<String, Vec<Occurrence>> = BTreeMap::new();
        for word in &t.words {
            if let (Some((start, end)), Some(term)) = (timed(word), normalize_term(&word.text)) {
                let confidence = clean_confidence(word.confidence);
                terms
                    .entry(term)
                    .or_default()
                    .push(Occurrence { start, end, confidence });
            }
        }
        terms
            .values_mut()
            .for_each(|occurrences| occurrences.sort_by(|a, b| a.start.total_cmp(&b.start)));
        SearchIndex { terms }
    }
}

/// A place in an asset where a query is spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchMatch {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub context: String,
    pub confidence: f32,
    /// The sidecar caption track the match is in; absent for the speech transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
}

/// Why a query is refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("the query is empty")]
    Empty,
    #[error("the query is too long (at most 10 words, 200 characters)")]
    TooLong,
}

/// A searchable word of a transcript: it has a term and usable times.
struct Spoken<'a> {
    word: &'a Word,
    term: String,
    start: f64,
    end: f64,
}

/// Searches a transcript: the query is normalized word by word (terms via normalize_term); a one-word query matches
/// every occurrence of the term; a multi-word query matches consecutive words (phrase; filler tokens in between are
/// ignored). Each match: start of the first matched word, end of the last, the matched words as spoken, context =
/// the matched words with up to 5 words before and after, joined by spaces, confidence = min over matched words.
/// Results in time order, at most `limit`. Empty/blank query -> Err(QueryError::Empty); longer than 200 chars or
/// more than 10 words -> Err(QueryError::TooLong).
pub fn search(t: &Transcript, query: &str, limit: usize) -> Result<Vec<SearchMatch>, QueryError> {
    let terms = query_terms(query)?; // never empty
    let spoken: Vec<Spoken> = (t.words.iter())
        .filter_map(|word| Some((word, timed(word)?, normalize_term(&word.text)?)))
        .map(|(word, (start, end), term)| Spoken { word, term, start, end })
        .collect();
    let join = |words: &[Spoken]| words.iter().map(|s| s.word.text.trim()).collect::<Vec<_>>().join(" ");
    let mut matches = Vec::new();
    for (i, window) in spoken.windows(terms.len().max(1)).enumerate() {
        let hit = window.iter().zip(&terms).all(|(s, term)| s.term == *term);
        if let (true, Some(first), Some(last)) = (hit, window.first(), window.last()) {
            let from = i.saturating_sub(CONTEXT_WORDS);
            let context = spoken
                .get(from..(i + window.len() + CONTEXT_WORDS).min(spoken.len()))
                .map_or_else(String::new, join);
            let confidences = window.iter().map(|s| clean_confidence(s.word.confidence));
            matches.push(SearchMatch {
                start: first.start,
                end: last.end.max(first.start),
                text: join(window),
                context,
                confidence: confidences.fold(1.0, f32::min),
                track: None,
            });
        }
    }
    matches.sort_by(|a, b| a.start.total_cmp(&b.start));
    matches.truncate(limit);
    Ok(matches)
}

/// The normalized terms of a query (for cross-asset lookup in a store), same rules/errors as search; a query with
/// no term left after normalization (e.g. only punctuation) is empty.
pub fn query_terms(query: &str) -> Result<Vec<String>, QueryError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(QueryError::Empty);
    }
    if query.chars().count() > MAX_QUERY_CHARS || query.split_whitespace().count() > MAX_QUERY_WORDS {
        return Err(QueryError::TooLong);
    }
    let terms: Vec<String> = query.split_whitespace().filter_map(normalize_term).collect();
    if terms.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(terms)
}

/// Word error rate of a hypothesis against a reference: word-level Levenshtein distance (substitutions + deletions +
/// insertions) / reference word count, both normalized with normalize_term (terms that normalize to None dropped).
/// Numbers are not converted. Empty reference: 0.0 if hypothesis empty else 1.0.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let reference: Vec<String> = reference.split_whitespace().filter_map(normalize_term).collect();
    let hypothesis: Vec<String> = hypothesis.split_whitespace().filter_map(normalize_term).collect();
    if reference.is_empty() {
        return if hypothesis.is_empty() { 0.0 } else { 1.0 };
    }
    // Edit distance, one row per reference word: prev[j] = distance(reference[..i], hypothesis[..j]).
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, ref_word) in reference.iter().enumerate() {
        let mut row = Vec::with_capacity(prev.len());
        row.push(i + 1);
        for (pair, hyp_word) in prev.windows(2).zip(&hypothesis) {
            let (&[diagonal, up], Some(&left)) = (pair, row.last()) else {
                continue;
            };
            row.push((diagonal + usize::from(ref_word != hyp_word)).min(up + 1).min(left + 1));
        }
        prev = row;
    }
    prev.last().copied().unwrap_or(0) as f64 / reference.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start: f64, end: f64) -> Word {
        Word {
            text: text.into(),
            start,
            end,
            confidence: 0.9,
        }
    }

    /// Words from "text:start:end" items.
    fn ws(spec: &str) -> Vec<Word> {
        let time = |t: Option<&str>| t.and_then(|t| t.parse().ok()).unwrap_or(f64::NAN);
        let word = |item: &str| {
            let mut parts = item.split(':');
            let text = parts.next().unwrap_or_default();
            w(text, time(parts.next()), time(parts.next()))
        };
        spec.split_whitespace().map(word).collect()
    }

    fn cue(start: f64, end: f64, text: &str) -> Cue {
        let text = text.into();
        Cue { start, end, text }
    }

    fn chunk(start: f64, end: f64, words: Vec<Word>) -> ChunkTranscript {
        ChunkTranscript { start, end, words }
    }

    fn transcript(words: Vec<Word>) -> Transcript {
        Transcript {
            language: "en".into(),
            duration: 100.0,
            words,
        }
    }

    /// The words of `text`, one per second, each 0.8 s long.
    fn spoken(text: &str) -> Transcript {
        let words = text.split(' ').enumerate().map(|(i, t)| w(t, i as f64, i as f64 + 0.8));
        transcript(words.collect())
    }

    /// `n` times the same word, one every `step` seconds.
    fn repeated(word: &str, n: usize, step: f64) -> Transcript {
        let at = |i: usize| i as f64 * step;
        transcript((0..n).map(|i| w(word, at(i), at(i) + 0.8 * step)).collect())
    }

    #[test]
    fn merge_keeps_each_word_once_sorted_and_clamped() {
        let first = chunk(0.0, 10.0, ws("hello:0.5:0.9 world:9.5:10.2 <sil>:1:2 again:10.5:11"));
        let second = ws("world:9.5:10.2 again:10.5:11 read(2):12:11 x:NaN:1 y:-1:13 bye:19.9:20.5");
        let t = Transcript::merge("en", 20.0, vec![chunk(10.0, 20.0, second), first]);
        assert_eq!(t.text(), "hello world again read bye");
        let (read, bye) = (&t.words[3], &t.words[4]);
        assert_eq!((read.start, read.end, bye.end), (12.0, 12.0, 20.0));
        // The same word heard by both chunks, timed on both sides of their boundary, is kept once.
        let (a, b) = (ws("Hello:9.98:10.3"), ws("hello:10.01:10.3 you:10.4:10.6"));
        let t = Transcript::merge("en", f64::NAN, vec![chunk(0.0, 10.0, a), chunk(10.0, 20.0, b)]);
        assert_eq!((t.text(), t.duration), ("Hello you".to_string(), 10.6));
    }

    #[test]
    fn cues_split_on_pauses_and_limits() {
        let cues = transcript(ws("one:0:0.5 two:0.6:1 three:2.5:2.7")).cues(84, 6.0);
        assert_eq!(cues, [cue(0.0, 1.0, "one two"), cue(2.5, 3.0, "three")]);
        // At least 0.5 s on screen, but never over the next cue.
        let cues = transcript(ws("hello:0:0.1 world:0.3:0.6")).cues(5, 6.0);
        assert_eq!(cues, [cue(0.0, 0.3, "hello"), cue(0.3, 0.8, "world")]);
        let cues = repeated("caption", 60, 0.3).cues(DEFAULT_CUE_CHARS, DEFAULT_CUE_SECS);
        let line = ["caption"; 5].join(" ");
        assert_eq!((cues.len(), cues[0].text.clone()), (6, format!("{line}\n{line}")));
        // Two lines of 42 hold six ten-character words, whatever `max_chars` says.
        let three = ["abcdefghij"; 3].join(" ");
        let cues = repeated("abcdefghij", 30, 0.1).cues(1000, 1.0);
        assert!(cues.len() == 5 && cues.iter().all(|c| c.text == format!("{three}\n{three}")));
        let cues = repeated("ab", 30, 0.1).cues(84, 1.0);
        assert!(cues.len() == 3 && cues.iter().all(|c| c.end - c.start <= 1.0 && !c.text.contains('\n')));
    }

    #[test]
    fn webvtt_exact_output_and_escaping() {
        let cues = [
            cue(3723.4567, 3725.0, "later\n\nline"),
            cue(1.0, 2.5, "Hi"),
            cue(f64::NAN, -1.0, "x"),
        ];
        let expected = "WEBVTT\n\n00:00:00.000 --> 00:00:00.000\nx\n\n00:00:01.000 --> 00:00:02.500\nHi\n\n\
                        01:02:03.457 --> 01:02:05.000\nlater\nline\n\n";
        assert_eq!(webvtt(&cues), expected);
        let escaped = webvtt(&transcript(ws("<b>&:1:2 -->:2:2.5")).cues(84, 6.0));
        let expected = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n&lt;b&gt;&amp; --&gt;\n\n";
        assert_eq!(escaped, expected);
        assert_eq!(webvtt(&[cue(1.0, 2.0, " \n ")]), "WEBVTT\n\n");
    }

    #[test]
    fn webvtt_segments_hold_the_overlapping_cues() {
        let cues = ws("a:0:2 b:3:5 c:5:7 d:6:6");
        let cues: Vec<Cue> = cues.iter().map(|w| cue(w.start, w.end, &w.text)).collect();
        let header = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n";
        let only_b = format!("{header}00:00:03.000 --> 00:00:05.000\nb\n\n");
        assert_eq!(webvtt_segment(&cues, 2.0, 5.0), only_b);
        let both = webvtt_segment(&cues, 1.0, 3.5);
        assert!(both.contains("\na\n") && both.contains("\nb\n") && !both.contains("\nc\n"));
        assert!(webvtt_segment(&cues, 6.0, 12.0).ends_with("\nc\n\n00:00:06.000 --> 00:00:06.000\nd\n\n"));
        assert_eq!(webvtt_segment(&cues, 100.0, 106.0), header);
        assert_eq!(webvtt_segment(&cues, f64::NAN, 106.0), header);
    }

    #[test]
    fn ttml_is_escaped_and_timed() {
        let cues = [cue(1.0, 2.5, "Tom & \"Jerry\"\n<i>it's</i>"), cue(3.0, 1.0, "two")];
        let doc = ttml(&cues, "en-US");
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tt xmlns=\"http://www.w3.org/ns/ttml\""));
        assert!(doc.contains("xml:lang=\"en-US\"") && doc.contains("ttp:timeBase=\"media\""));
        let text = "Tom &amp; &quot;Jerry&quot;<br/>&lt;i&gt;it&apos;s&lt;/i&gt;";
        assert!(doc.contains(&format!("<p begin=\"00:00:01.000\" end=\"00:00:02.500\">{text}</p>")));
        assert!(doc.contains("<p begin=\"00:00:03.000\" end=\"00:00:03.000\">two</p>"));
        assert_eq!(doc.matches('<').count(), doc.matches('>').count());
        assert!(doc.ends_with("</div></body>\n</tt>\n"));
        for language in ["", "en\" onload=\"x", "fr_FR"] {
            assert!(ttml(&[], language).contains("xml:lang=\"und\""), "{language}");
        }
    }

    #[test]
    fn normalize_term_cases() {
        let cases = "Hello,=hello \"Don't!\"=don't Don\u{2019}t=don't read(2)=read Émile=émile (hi)=hi e-mail=e-mail";
        for (word, term) in cases.split(' ').filter_map(|case| case.split_once('=')) {
            assert_eq!(normalize_term(word).as_deref(), Some(term), "{word}");
        }
        let fillers = "<s> </s> <sil> [NOISE] ++garbage++ -- (2) '".split(' ');
        for filler in fillers.chain(["", "  "]) {
            assert_eq!(normalize_term(filler), None, "{filler}");
        }
    }

    #[test]
    fn keywords_drop_stop_words_and_rank() {
        let mut t = spoken("the cloud the cloud storage is cheap cloud storage and video video go");
        t.words[10].confidence = 1.0; // video: 2 occurrences, total confidence 1.9 > storage's 1.8
        let top = keywords(&t, 3);
        let names: Vec<&str> = top.iter().map(|k| k.text.as_str()).collect();
        assert_eq!(names, ["cloud", "video", "storage"]);
        assert_eq!((top[0].count, top[0].times.clone()), (3, vec![1.0, 3.0, 7.0]));
        assert_eq!(keywords(&spoken("beta alpha"), 5)[0].text, "alpha");
        assert!(keywords(&spoken("the and of it is we go"), 5).is_empty());
        assert_eq!(keywords(&repeated("echo", 30, 1.0), 1)[0].times.len(), KEYWORD_TIMES);
    }

    #[test]
    fn search_finds_words_and_phrases_with_context() {
        let mut t = spoken("so today we talk about cloud storage and why cloud storage is cheap for video on demand");
        t.words[10].confidence = 0.5;
        let found = search(&t, "Cloud Storage", 10).unwrap();
        let first = (found[0].start, found[0].end, found[0].text.as_str());
        assert_eq!((found.len(), first), (2, (5.0, 6.8, "cloud storage")));
        let context = "so today we talk about cloud storage and why cloud storage is";
        assert_eq!((found[0].context.as_str(), found[0].confidence), (context, 0.9));
        let context = "about cloud storage and why cloud storage is cheap for video on";
        assert_eq!((found[1].context.as_str(), found[1].confidence), (context, 0.5));
        let hits = |query: &str, limit| search(&t, query, limit).unwrap().len();
        assert_eq!((hits("cloud,", 1), hits("cloud", 10)), (1, 2));
        assert_eq!((hits("cloud", 0), hits("storage cloud storage cheap", 10)), (0, 0));
        let last = search(&t, "DEMAND", 1).unwrap();
        assert_eq!(last[0].context, "is cheap for video on demand");
        let with_filler = transcript(ws("Cloud:0:0.5 <sil>:0.5:0.9 storage.:1:1.5"));
        assert_eq!(
            search(&with_filler, "cloud storage", 5).unwrap()[0].text,
            "Cloud storage."
        );
        let index = SearchIndex::build(&t);
        let cloud = index.terms["cloud"][1];
        assert_eq!((index.terms.len(), index.terms["cloud"].len()), (15, 2));
        assert_eq!((cloud.start, cloud.end, cloud.confidence), (9.0, 9.8, 0.9));
    }

    #[test]
    fn query_errors() {
        assert_eq!(query_terms("  "), Err(QueryError::Empty));
        assert_eq!(query_terms("?? !!"), Err(QueryError::Empty));
        assert_eq!(query_terms(&"a ".repeat(11)), Err(QueryError::TooLong));
        assert_eq!(query_terms(&"x".repeat(201)), Err(QueryError::TooLong));
        assert_eq!(query_terms("Don't STOP!").map(|t| t.join(",")), Ok("don't,stop".into()));
        assert_eq!(search(&spoken("x"), "", 5), Err(QueryError::Empty));
    }

    #[test]
    fn word_error_rate_counts_edits() {
        assert_eq!(word_error_rate("Hello, world!", "hello world"), 0.0);
        assert_eq!(word_error_rate("the cat sat down", "the cat sit down"), 0.25);
        assert_eq!(word_error_rate("the cat sat down", "the big cat sat down"), 0.25);
        assert_eq!(word_error_rate("the cat sat down", "the sat down"), 0.25);
        assert_eq!(word_error_rate("the cat <sil> sat", "the cat sat"), 0.0);
        assert_eq!(word_error_rate("one two", ""), 1.0);
        assert_eq!((word_error_rate("", ""), word_error_rate("", "x")), (0.0, 1.0));
    }

    #[test]
    fn no_panic_on_bad_times_or_empty_transcripts() {
        let mut bad = transcript(ws("nan:NaN:NaN inf:1:inf neg:-5:-1 back:0.5:0.2"));
        bad.duration = f64::NAN;
        bad.words[0].confidence = f32::NAN;
        bad.words[1].confidence = 7.0;
        bad.words.push(w(" ", 0.7, 0.8));
        for t in [bad, transcript(vec![])] {
            for max_secs in [f64::NAN, -1.0, 0.0, DEFAULT_CUE_SECS] {
                let cues = t.cues(0, max_secs);
                assert!(cues.iter().all(|c| c.start.is_finite() && c.end >= c.start));
                let segment = webvtt_segment(&cues, f64::NEG_INFINITY, f64::INFINITY);
                assert!(webvtt(&cues).len() + segment.len() + ttml(&cues, "en").len() > 0);
            }
            let _ = (t.text(), keywords(&t, 10));
            let _ = (SearchIndex::build(&t), search(&t, "nan inf", 10));
            let _ = Transcript::merge("en", -3.0, vec![chunk(f64::NAN, 5.0, t.words.clone())]);
            let merged = Transcript::merge("", f64::INFINITY, vec![chunk(0.0, 9.0, t.words)]);
            assert!(merged.duration.is_finite() && merged.words.iter().all(|w| w.end.is_finite() && w.end >= w.start));
        }
        assert_eq!(timestamp(f64::INFINITY), "00:00:00.000");
        assert_eq!(timestamp(360000.0), "100:00:00.000");
    }
}
