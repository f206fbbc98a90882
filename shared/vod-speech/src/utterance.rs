//! Cutting audio into utterances at pauses (an energy detector over 20 ms frames, relative to the clip's own noise
//! floor): the decoder works best on utterances of a few seconds, and silence between them costs nothing.
//! Hand-written: the VAD crates either need a neural model download or bind C code for a 30-line job.

/// Samples [start, end) of one utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

const FRAME_MS: usize = 20;
/// Pauses shorter than this stay inside an utterance.
const MIN_PAUSE_MS: usize = 300;
/// Context kept around speech.
const PAD_MS: usize = 200;
/// Longest utterance handed to the decoder.
const MAX_UTTERANCE_MS: usize = 20_000;
/// Runs of speech shorter than this are clicks.
const MIN_SPEECH_MS: usize = 100;

/// Utterances of `pcm` (mono, `rate` Hz), in order, non-overlapping.
pub fn split(pcm: &[i16], rate: u32) -> Vec<Span> {
    let frame = (rate as usize * FRAME_MS / 1000).max(1);
    let energies: Vec<f64> = pcm.chunks(frame).map(frame_db).collect();
    if energies.is_empty() {
        return Vec::new();
    }
    let mut sorted = energies.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = sorted.get(sorted.len() / 10).copied().unwrap_or(-100.0);
    // Speech is well above the clip's quiet parts and above near-silence in absolute terms; anything louder than
    // -30 dBFS counts even in a clip without pauses.
    let threshold = (floor + 12.0).clamp(-50.0, -30.0);
    let active: Vec<bool> = energies.iter().map(|e| *e > threshold).collect();

    let ms_frames = |ms: usize| (ms / FRAME_MS).max(1);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < active.len() {
        if !active[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < active.len() && active[i] {
            i += 1;
        }
        match runs.last_mut() {
            Some(last) if start - last.1 < ms_frames(MIN_PAUSE_MS) => last.1 = i,
            _ => runs.push((start, i)),
        }
    }
    let pad = ms_frames(PAD_MS);
    let max = ms_frames(MAX_UTTERANCE_MS);
    let mut spans = Vec::new();
    for (s, e) in runs {
        if e - s < ms_frames(MIN_SPEECH_MS) {
            continue;
        }
        let (mut s, e) = (s.saturating_sub(pad), (e + pad).min(energies.len()));
        if let Some(prev) = spans.last() {
            let prev: &(usize, usize) = prev;
            s = s.max(prev.1);
        }
        // Long runs are cut at their quietest frame in the last quarter before the limit.
        while e - s > max {
            let window = (s + max * 3 / 4)..(s + max);
            let cut = window
                .clone()
                .min_by(|a, b| energies[*a].total_cmp(&energies[*b]))
                .unwrap_or(s + max);
            spans.push((s, cut));
            s = cut;
        }
        if e > s {
            spans.push((s, e));
        }
    }
    spans
        .into_iter()
        .map(|(s, e)| Span {
            start: s * frame,
            end: (e * frame).min(pcm.len()),
        })
        .filter(|sp| sp.end > sp.start)
        .collect()
}

/// Frame energy in dB relative to full scale.
fn frame_db(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return -100.0;
    }
    let sum: f64 = samples.iter().map(|s| (*s as f64) * (*s as f64)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    (20.0 * rms.max(1e-5).log10()).max(-100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(secs: f64, amp: f64) -> Vec<i16> {
        (0..(secs * 16000.0) as usize)
            .map(|i| (amp * 32767.0 * (i as f64 * 0.1).sin()) as i16)
            .collect()
    }

    #[test]
    fn silence_has_no_utterances() {
        assert!(split(&vec![0; 16000 * 3], 16000).is_empty());
        assert!(split(&[], 16000).is_empty());
        assert!(split(&tone(3.0, 0.001), 16000).is_empty(), "hiss below -50 dBFS");
    }

    #[test]
    fn pauses_split_and_short_gaps_do_not() {
        let mut pcm = vec![0; 16000];
        pcm.extend(tone(1.0, 0.3));
        pcm.extend(vec![0; 16000 / 10]); // 100 ms gap: same utterance
        pcm.extend(tone(1.0, 0.3));
        pcm.extend(vec![0; 16000]); // 1 s pause: new utterance
        pcm.extend(tone(0.5, 0.3));
        pcm.extend(vec![0; 16000]);
        let spans = split(&pcm, 16000);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert!(spans[0].start <= 16000 && spans[0].start >= 16000 - 4000);
        assert!(spans[1].start < 16000 * 4 && spans[1].end > 16000 * 4 + 8000);
    }

    #[test]
    fn long_speech_is_cut_below_the_limit() {
        let mut pcm = vec![0; 16000];
        pcm.extend(tone(50.0, 0.3));
        pcm.extend(vec![0; 16000]);
        let spans = split(&pcm, 16000);
        assert!(spans.len() >= 3);
        assert!(spans.iter().all(|s| s.end - s.start <= 20 * 16000));
        assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
    }
}

/// Classic speech/music discrimination features of a stretch of audio, over 1 s windows of 20 ms frames:
/// `lster`, the share of frames whose energy is below half the window's mean (speech pauses between syllables;
/// sustained music rarely does), and `hzcrr`, the share of frames whose zero-crossing rate exceeds 1.5× the
/// window's mean (unvoiced consonants between voiced sounds). Averaged over the windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speechiness {
    pub lster: f64,
    pub hzcrr: f64,
}

pub fn speechiness(pcm: &[i16], rate: u32) -> Speechiness {
    let frame = (rate as usize * FRAME_MS / 1000).max(1);
    let per_window = (1000 / FRAME_MS).max(1);
    let frames: Vec<(f64, f64)> = pcm
        .chunks(frame)
        .filter(|c| c.len() == frame)
        .map(|c| {
            let energy = c.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / c.len() as f64;
            let crossings = c.windows(2).filter(|w| (w[0] >= 0) != (w[1] >= 0)).count();
            (energy, crossings as f64 / c.len() as f64)
        })
        .collect();
    let (mut lster, mut hzcrr, mut windows) = (0.0, 0.0, 0usize);
    for w in frames.chunks(per_window) {
        if w.len() < per_window / 2 {
            continue;
        }
        let n = w.len() as f64;
        let mean_e = w.iter().map(|f| f.0).sum::<f64>() / n;
        let mean_z = w.iter().map(|f| f.1).sum::<f64>() / n;
        lster += w.iter().filter(|f| f.0 < 0.5 * mean_e).count() as f64 / n;
        hzcrr += w.iter().filter(|f| f.1 > 1.5 * mean_z).count() as f64 / n;
        windows += 1;
    }
    if windows == 0 {
        return Speechiness { lster: 0.0, hzcrr: 0.0 };
    }
    Speechiness {
        lster: lster / windows as f64,
        hzcrr: hzcrr / windows as f64,
    }
}
