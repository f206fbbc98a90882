//! Each format read into the same cues; malformed, hostile and oversized files refused with where and why.
use super::*;

fn texts(cues: &[Cue]) -> Vec<(f64, f64, &str)> {
    cues.iter().map(|c| (c.start, c.end, c.text.as_str())).collect()
}

const WANT: [(f64, f64, &str); 2] = [(1.0, 2.5, "Hello there,\nfriend."), (62.25, 64.0, "Rivers & <hills>")];

#[test]
fn webvtt_srt_and_ttml_give_the_same_cues() {
    let vtt =
        "\u{feff}WEBVTT - a title\nKind: captions\n\nNOTE a comment\nspanning lines\n\nSTYLE\n::cue { color: red }\n\n\
               intro\n00:01.000 --> 00:02.500 align:start line:90%\n<v Ann>Hello <i>there</i>,</v>\nfriend.\n\n\
               01:02.250 --> 01:04.000\nRivers &amp; &lt;hills&gt;\n";
    let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello there,</i>\r\n{\\an8}friend.\r\n\r\n\
               2\r\n00:01:02,250 --> 00:01:04,000\r\nRivers & <font color=\"red\">&lt;hills&gt;</font>\r\n";
    let ttml = r#"<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:frameRate="25" ttp:tickRate="10000000" xml:lang="en">
  <body><div begin="1s">
    <p begin="0f" end="15000000t">Hello <span tts:color="white">there</span>,<br/>friend.</p>
    <p begin="00:01:01.250" dur="1.75s">Rivers &amp; &lt;hills&gt;</p>
    <p begin="00:01:10:05" end="00:01:10:20">  </p>
  </div></body>
</tt>"#;
    for (name, bytes, format) in [
        ("vtt", vtt, CaptionFormat::Vtt),
        ("srt", srt, CaptionFormat::Srt),
        ("ttml", ttml, CaptionFormat::Ttml),
    ] {
        let cues = parse(bytes.as_bytes(), format).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = texts(&cues);
        assert_eq!(got.len(), 2, "{name}: {got:?}");
        for ((s, e, t), (ws, we, wt)) in got.iter().zip(WANT) {
            assert!((s - ws).abs() < 1e-6 && (e - we).abs() < 1e-6, "{name}: {got:?}");
            assert_eq!(*t, wt, "{name}");
        }
        assert_eq!(CaptionFormat::sniff(bytes), Some(format), "{name}");
    }
    assert_eq!(CaptionFormat::parse(".DFXP"), Some(CaptionFormat::Ttml));
    assert_eq!(CaptionFormat::parse("ass"), None);
}

#[test]
fn malformed_files_are_refused_with_where_and_why() {
    let cases: [(&str, CaptionFormat, &str); 8] = [
        ("00:01.000 --> 00:02.000\nhi\n", CaptionFormat::Vtt, "WEBVTT"),
        ("WEBVTT\n\n00:01.000 -> 00:02.000\nhi\n", CaptionFormat::Vtt, "line 3"),
        (
            "WEBVTT\n\n00:03.000 --> 00:02.000\nhi\n",
            CaptionFormat::Vtt,
            "ends before",
        ),
        (
            "1\n00:00:01,000 --> 00:00:99,000\nhi\n",
            CaptionFormat::Srt,
            "bad timing",
        ),
        (
            "1\n00:00:01,000 --> 99999:00:00,000\nhi\n",
            CaptionFormat::Srt,
            "bad timing",
        ),
        (
            "<tt><body><p end=\"1s\">x</p></body></tt>",
            CaptionFormat::Ttml,
            "needs begin",
        ),
        (
            "<tt><body><p begin=\"1s\">x</p></body></tt>",
            CaptionFormat::Ttml,
            "needs end or dur",
        ),
        (
            "<tt><body><p begin=\"1s\" end=\"2s\">x</body></tt>",
            CaptionFormat::Ttml,
            "XML",
        ),
    ];
    for (text, format, why) in cases {
        let e = parse(text.as_bytes(), format).expect_err(text).to_string();
        assert!(e.contains(why), "{text:?}: {e}");
    }
    assert_eq!(parse(b"WEBVTT\n\n", CaptionFormat::Vtt), Err(CaptionError::Empty));
    assert_eq!(
        parse(&[0xff, 0xfe, 0x00], CaptionFormat::Srt),
        Err(CaptionError::NotText)
    );
}

#[test]
fn hostile_files_are_bounded() {
    let big = vec![b'a'; MAX_CAPTION_BYTES + 1];
    assert_eq!(parse(&big, CaptionFormat::Srt), Err(CaptionError::TooLarge));
    let mut many = String::from("WEBVTT\n\n");
    for i in 0..=MAX_CUES {
        many.push_str(&format!("00:00:{:02}.000 --> 00:00:{:02}.500\nx\n\n", i % 60, i % 60));
    }
    assert_eq!(
        parse(many.as_bytes(), CaptionFormat::Vtt),
        Err(CaptionError::TooManyCues)
    );
    let long = format!("WEBVTT\n\n00:01.000 --> 00:02.000\n{}\n", "w".repeat(MAX_CUE_CHARS + 1));
    assert!(parse(long.as_bytes(), CaptionFormat::Vtt).is_err());
    // Deep nesting and entity tricks in TTML are plain errors or text, never expansion.
    let nested = format!(
        "<tt><body><div><p begin=\"0s\" end=\"1s\">{}x{}</p></div></body></tt>",
        "<span>".repeat(10_000),
        "</span>".repeat(10_000)
    );
    assert_eq!(
        parse(nested.as_bytes(), CaptionFormat::Ttml).map(|c| c[0].text.clone()),
        Ok("x".to_string())
    );
    let entity =
        "<!DOCTYPE tt [<!ENTITY a \"aaaaaaaaaa\">]><tt><body><p begin=\"0s\" end=\"1s\">&a;&a;</p></body></tt>";
    let r = parse(entity.as_bytes(), CaptionFormat::Ttml);
    assert!(r.as_ref().map_or(true, |c| c[0].text.len() < 40), "{r:?}");
}

#[test]
fn malformed_ttml_after_multibyte_text_names_its_line() {
    let ttml = "<tt><body>\n<p begin=\"0s\" end=\"1s\">Ça va — très bien</p>\n<p begin=\"1s\" end=\"2s\">é</div>\n</body></tt>";
    let e = parse(ttml.as_bytes(), CaptionFormat::Ttml)
        .expect_err("a mismatched end tag")
        .to_string();
    assert!(e.starts_with("line 3:") && e.contains("XML"), "{e}");
}
