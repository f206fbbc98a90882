//! The engine on speech synthesized by espeak-ng (Debian), resampled to 16 kHz by ffmpeg: the words come back with
//! times, silence and music give nothing.
use std::process::Command;

use vod_domain::indexing::word_error_rate;
use vod_speech::{transcribe, Recognizer, SpeechConfig};

/// Everyday sentences (the generic language model knows their word sequences).
const TEXT: &str = "we are going to the market today to buy some bread and fresh vegetables. \
                    the weather is nice and the children are playing in the park. \
                    my brother works at the hospital near the river. please call me when you get home tonight.";

fn pcm_from(args: &[&str]) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(args)
        .args(["-ac", "1", "-ar", "16000", "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn speech(text: &str, lead_silence: f64) -> Vec<i16> {
    let dir = std::env::temp_dir().join(format!("vod-speech-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("speech.wav");
    let st = Command::new("espeak-ng")
        // The Klatt variant of the US voice: the default formant voice is much harder for the acoustic model.
        .args(["-v", "en-us+klatt2", "-s", "130", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(st.success());
    let mut pcm = vec![0i16; (lead_silence * 16000.0) as usize];
    pcm.extend(pcm_from(&["-i", wav.to_str().unwrap()]));
    pcm.extend(vec![0i16; 16000]);
    pcm
}

fn recognizer() -> (Recognizer, f32) {
    let cfg = SpeechConfig::from_lookup(|k| std::env::var(k).ok());
    (
        Recognizer::new(&cfg).expect("pocketsphinx and its model are installed"),
        cfg.min_confidence,
    )
}

#[test]
fn recognizes_espeak_with_word_times() {
    let (mut rec, floor) = recognizer();
    let pcm = speech(TEXT, 2.0);
    let words = transcribe(&mut rec, &pcm, 10.0, floor).unwrap();
    let hyp: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let wer = word_error_rate(TEXT, &hyp.join(" "));
    eprintln!("WER {wer:.3}: {}", hyp.join(" "));
    assert!(wer <= 0.45, "WER {wer} too high: {hyp:?}");
    // Offsets: speech starts after 2 s of silence in a window that starts at 10 s.
    let first = words.first().unwrap();
    assert!((first.start - 12.0).abs() < 0.6, "first word at {}", first.start);
    assert!(words.windows(2).all(|w| w[0].start <= w[1].start));
    assert!(words
        .iter()
        .all(|w| w.end > w.start && (0.0..=1.0).contains(&w.confidence)));
}

#[test]
fn silence_and_music_give_no_words() {
    let (mut rec, floor) = recognizer();
    let silence = vec![0i16; 16000 * 5];
    assert!(transcribe(&mut rec, &silence, 0.0, floor).unwrap().is_empty());
    // A synthetic tune: notes of a scale with harmonics, like the e2e test's music-only source.
    let music = pcm_from(&[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='0.3*sin(2*PI*(220+110*mod(floor(t*4),5))*t)+0.15*sin(4*PI*(220+110*mod(floor(t*4),5))*t)':d=8",
    ]);
    let words = transcribe(&mut rec, &music, 0.0, floor).unwrap();
    assert!(words.is_empty(), "music decoded as {words:?}");
}

#[test]
fn a_missing_engine_is_a_clear_error() {
    let cfg = SpeechConfig {
        library: "libdoes-not-exist.so".into(),
        ..SpeechConfig::from_lookup(|_| None)
    };
    let err = Recognizer::new(&cfg).err().expect("fails");
    assert!(err.to_string().contains("unavailable"), "{err}");
    let cfg = SpeechConfig {
        model_dir: "/nonexistent".into(),
        ..SpeechConfig::from_lookup(|_| None)
    };
    assert!(Recognizer::new(&cfg).err().unwrap().to_string().contains("missing"));
}
