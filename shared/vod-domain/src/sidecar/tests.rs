use super::*;
use crate::indexing::{Transcript, Word};
use crate::memory::{MemoryAssetStore, MemoryBlobStore, MemorySearchStore};
use crate::model::{AssetState, CaptionsInfo};
use crate::search::SearchService;

const SRT: &str = "1\n00:00:01,000 --> 00:00:03,000\nBonjour tout le monde\n\n2\n00:00:04,000 --> 00:00:05,000\n<i>Une grenouille</i> chante\n";

fn upload(language: &str, label: &str, format: Option<&str>, text: &str) -> AddCaptions {
    AddCaptions {
        language: language.into(),
        label: label.into(),
        format: format.map(str::to_string),
        text: text.into(),
    }
}

struct World {
    assets: Arc<MemoryAssetStore>,
    blobs: Arc<MemoryBlobStore>,
    terms: Arc<MemorySearchStore>,
    captions: CaptionService,
    search: SearchService,
    id: AssetId,
}

async fn world() -> World {
    let assets = Arc::new(MemoryAssetStore::default());
    let blobs = Arc::new(MemoryBlobStore::default());
    let terms = Arc::new(MemorySearchStore::default());
    let id = AssetId::new_random();
    assets.insert(&Asset::new(id, "clip", AssetState::Ready)).await.unwrap();
    World {
        captions: CaptionService::new(assets.clone(), blobs.clone(), terms.clone(), "media"),
        search: SearchService::new(assets.clone(), blobs.clone(), terms.clone()),
        assets,
        blobs,
        terms,
        id,
    }
}

#[test]
fn languages_labels_and_ids_are_checked() {
    for ok in ["fr", "pt-BR", "zh-Hant", "es-419", "sgn-BE-FR", "und"] {
        assert!(valid_language(ok), "{ok}");
    }
    for bad in [
        "",
        "f",
        "fr_FR",
        "fr-",
        "-fr",
        "français",
        "fr-toolongsubtag",
        "12",
        "fr BR",
    ] {
        assert!(!valid_language(bad), "{bad}");
    }
    assert_eq!(new_track_id("pt-BR", ["pt-1", "fr-1"].into_iter()), "pt-2");
    assert_eq!(new_track_id("FR", [].into_iter()), "fr-1");
    assert!(valid_track_id("fr-1") && !valid_track_id("Fr-1") && !valid_track_id("fr/1") && !valid_track_id(""));
    let label_err = read_upload(&upload("fr", "", None, SRT)).unwrap_err();
    assert_eq!(label_err, SidecarError::Label);
    assert_eq!(
        read_upload(&upload("fr", "a\u{7}b", None, SRT)).unwrap_err(),
        SidecarError::Label
    );
    assert_eq!(
        read_upload(&upload("fr", &"x".repeat(65), None, SRT)).unwrap_err(),
        SidecarError::Label
    );
}

#[test]
fn uploads_are_sniffed_or_named_and_errors_name_the_line() {
    let (format, cues) = read_upload(&upload("fr", "Français", None, SRT)).unwrap();
    assert_eq!((format, cues.len()), (CaptionFormat::Srt, 2));
    assert_eq!(cues[1].text, "Une grenouille chante");
    let (format, _) = read_upload(&upload("fr", "Français", Some("srt"), SRT)).unwrap();
    assert_eq!(format, CaptionFormat::Srt);
    assert!(matches!(
        read_upload(&upload("fr", "x", Some("sub"), SRT)),
        Err(SidecarError::Format(_))
    ));
    assert_eq!(
        read_upload(&upload("fr", "x", None, "hello")).unwrap_err(),
        SidecarError::Undetected
    );
    let bad = "1\n00:00:01,000 --> 00:00:03,000\nok\n\n2\n00:00:04,000 --> nonsense\nbad\n";
    let e = read_upload(&upload("fr", "x", Some("srt"), bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 6"), "{e}");
    let big = "x".repeat(MAX_UPLOAD_BYTES + 1);
    assert_eq!(
        read_upload(&upload("fr", "x", Some("srt"), &big)).unwrap_err(),
        SidecarError::TooLarge
    );
}

#[tokio::test]
async fn tracks_are_stored_listed_searched_and_deleted() {
    let w = world().await;
    let t = w
        .captions
        .add(w.id, &upload("fr", "Français", None, SRT))
        .await
        .unwrap();
    assert_eq!((t.id.as_str(), t.cue_count, t.format), ("fr-1", 2, CaptionFormat::Srt));
    assert!(t.cues.starts_with(&format!("assets/{}/captions/", w.id)));
    let vtt = w.blobs.get(&BlobRef::new("media", &t.vtt)).await.unwrap().unwrap();
    assert!(String::from_utf8(vtt)
        .unwrap()
        .contains("00:00:04.000 --> 00:00:05.000\nUne grenouille chante"));
    let second = w
        .captions
        .add(w.id, &upload("fre-CA", "Québécois", None, SRT))
        .await
        .unwrap();
    // An ISO 639-2 language is stored as BCP 47 wants it.
    assert_eq!((second.id.as_str(), second.language.as_str()), ("fr-2", "fr-CA"));
    let list = w.captions.list(w.id).await.unwrap();
    assert_eq!(
        list.items.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["fr-1", "fr-2"]
    );
    assert!(list.speech.is_none());

    // Searched in the asset (a cue's words share its time) and across assets.
    let found = w.search.search_asset(w.id, "grenouille", 10).await.unwrap();
    assert_eq!(found.matches.len(), 2);
    assert_eq!(found.matches[0].track.as_deref(), Some("fr-1"));
    assert!((found.matches[0].start - 4.0 - 1.0 / 3.0).abs() < 1e-9, "{found:?}");
    let all = w.search.search_all("tout le monde", 10, 10).await.unwrap();
    assert_eq!(all.len(), 1);

    assert!(w.captions.delete(w.id, "fr-1").await.unwrap());
    assert!(!w.captions.delete(w.id, "fr-1").await.unwrap());
    assert!(w.blobs.get(&BlobRef::new("media", &t.cues)).await.unwrap().is_none());
    let found = w.search.search_asset(w.id, "grenouille", 10).await.unwrap();
    assert_eq!(found.matches.len(), 1);
    assert_eq!(found.matches[0].track.as_deref(), Some("fr-2"));
    assert!(w.captions.delete(w.id, "fr-2").await.unwrap());
    assert!(w.search.search_all("grenouille", 10, 10).await.unwrap().is_empty());
    assert!(w.terms.find_term("grenouille", 10).await.unwrap().is_empty());
    assert!(matches!(
        w.captions
            .add(AssetId::new_random(), &upload("fr", "x", None, SRT))
            .await,
        Err(DomainError::NotFound { .. })
    ));
}

#[tokio::test]
async fn speech_and_sidecar_terms_are_kept_together() {
    let w = world().await;
    // An indexed asset: its transcript says "hello river".
    let transcript = Transcript {
        language: "en-US".into(),
        duration: 3.0,
        words: ["hello", "river"]
            .iter()
            .enumerate()
            .map(|(i, t)| Word {
                text: (*t).into(),
                start: i as f64,
                end: i as f64 + 0.5,
                confidence: 0.9,
            })
            .collect(),
    };
    let key = format!("assets/{}/jobs/j/index/transcript.json", w.id);
    let body = serde_json::to_vec(&transcript).unwrap();
    w.blobs
        .put(&BlobRef::new("media", &key), body, "application/json")
        .await
        .unwrap();
    let mut asset = w.assets.get(w.id).await.unwrap().unwrap();
    asset.captions = Some(CaptionsInfo {
        job_id: crate::job::JobId::new_random(),
        language: "en-US".into(),
        bucket: "media".into(),
        vtt: String::new(),
        ttml: String::new(),
        cues: String::new(),
        transcript: key,
        words: 2,
        keywords: Vec::new(),
    });
    w.assets.update(&asset).await.unwrap();
    w.captions
        .add(w.id, &upload("fr", "Français", None, SRT))
        .await
        .unwrap();
    for term in ["river", "grenouille"] {
        assert_eq!(w.terms.find_term(term, 10).await.unwrap().len(), 1, "{term}");
    }
    let found = w.search.search_asset(w.id, "river", 10).await.unwrap();
    assert_eq!(found.matches[0].track, None);
    let list = w.captions.list(w.id).await.unwrap();
    assert_eq!(list.speech.map(|s| s.language), Some("en-US".into()));
    // The index worker rewriting the speech keeps the sidecar's terms.
    crate::search::refresh_terms(w.assets.as_ref(), w.blobs.as_ref(), w.terms.as_ref(), w.id)
        .await
        .unwrap();
    assert_eq!(w.terms.find_term("grenouille", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_asset_holds_a_bounded_number_of_tracks() {
    let w = world().await;
    for _ in 0..MAX_TRACKS {
        w.captions
            .add(w.id, &upload("fr", "Français", None, SRT))
            .await
            .unwrap();
    }
    let e = w
        .captions
        .add(w.id, &upload("fr", "Français", None, SRT))
        .await
        .unwrap_err();
    assert!(matches!(e, DomainError::Conflict(_)), "{e}");
}
