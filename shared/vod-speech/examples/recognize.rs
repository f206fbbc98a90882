//! Recognizes a raw 16 kHz mono s16le file: `cargo run -p vod-speech --example recognize -- FILE [whole]`
//! (configuration from the same environment variables as the worker).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: recognize FILE.s16 [whole]")?;
    let whole = args.next().is_some_and(|a| a == "whole");
    let bytes = std::fs::read(path)?;
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let cfg = vod_speech::SpeechConfig::from_lookup(|k| std::env::var(k).ok());
    let mut rec = vod_speech::Recognizer::new(&cfg)?;
    for u in vod_speech::utterance::split(&pcm, 16000) {
        let f = vod_speech::utterance::speechiness(&pcm[u.start..u.end], 16000);
        println!(
            "utterance {:.2}-{:.2} lster {:.2} hzcrr {:.2}",
            u.start as f64 / 16e3,
            u.end as f64 / 16e3,
            f.lster,
            f.hzcrr
        );
    }
    let words = if whole {
        rec.decode(&pcm)?
            .into_iter()
            .map(|w| (format!("{} {:.0}", w.text, w.acoustic_per_frame), w.start, w.confidence))
            .collect::<Vec<_>>()
    } else {
        vod_speech::transcribe(&mut rec, &pcm, 0.0, 0.0)?
            .into_iter()
            .map(|w| (w.text, w.start, w.confidence))
            .collect()
    };
    for (t, s, c) in &words {
        println!("{s:7.2} {c:.3} {t}");
    }
    Ok(())
}
