//! The catalogue shipped in `schemas/catalogue`: it loads, covers the areas
//! and procedures IMI has, is complete in the 24 languages, every form
//! accepts its realistic example and refuses broken ones, and the generated
//! files (form schemas, reference) are current.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imi_schemas::catalogue::{read_folder, Catalogue, SourceFile};
use imi_schemas::ids::MessageType;
use imi_schemas::json_schema::form_schemas;
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn files() -> Vec<SourceFile> {
    read_folder(&root().join("catalogue")).expect("the catalogue folder reads")
}

fn shipped() -> Catalogue {
    Catalogue::parse(&files()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_shipped_catalogue_covers_imi_and_is_complete_in_24_languages() {
    let (_, report) = Catalogue::check(&files());
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(report.languages_complete, 24);
    assert!(report.areas >= 18, "{} areas", report.areas);
    assert!(report.procedures >= 45, "{} procedures", report.procedures);
    let c = shipped();
    let kinds: BTreeSet<&str> = c.procedures().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["intake", "notification", "repository", "request"])
    );
}

#[test]
fn every_form_accepts_its_example_and_refuses_broken_ones() {
    let c = shipped();
    let mut missing = Vec::new();
    for p in c.procedures() {
        for a in p.actions() {
            let at = format!("{}.{}", p.code, a.code);
            let Some(example) = &a.example else {
                missing.push(at);
                continue;
            };
            assert!(
                a.is_valid(example),
                "{at}: its example is refused: {:?}",
                a.validate(example)
            );
            let mut extra = example.clone();
            extra["unexpected_property"] = json!(1);
            assert!(
                !a.is_valid(&extra),
                "{at}: a payload with an unknown property is accepted"
            );
            let required = a.form_schema["required"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(first) = required.first().and_then(|r| r.as_str()) {
                let mut short = example.clone();
                short.as_object_mut().unwrap().remove(first);
                assert!(
                    !a.is_valid(&short),
                    "{at}: a payload without `{first}` is accepted"
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "actions without an example: {missing:?}"
    );
}

#[test]
fn the_diploma_request_refuses_a_wrong_payload_with_the_pointer_of_the_field() {
    let c = shipped();
    let t = MessageType::try_from("pq-information-request.send").unwrap();
    let (_, action) = c.resolve(&t).unwrap();
    let mut payload = json!({
        "professional": {"family_name": "Virtanen", "given_names": "Aino", "date_of_birth": "1988-04-12"},
        "profession": "PQ-NURSE",
        "diploma": {"title": "Sairaanhoitaja (AMK)", "awarded_by": "Metropolia", "awarded_on": "2012-06-01"},
        "questions": ["PQ-Q-DIPLOMA-AUTHENTIC", "PQ-Q-GOOD-STANDING"],
        "requested_answer_date": "2026-12-15"
    });
    action.validate(&payload).unwrap();
    payload["professional"]["date_of_birth"] = json!("12/04/1988");
    payload["questions"] = json!(["PQ-Q-NOT-A-QUESTION"]);
    let errors = action.validate(&payload).unwrap_err();
    let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert!(
        pointers.contains(&"/payload/professional/date_of_birth"),
        "{pointers:?}"
    );
    assert!(pointers.contains(&"/payload/questions/0"), "{pointers:?}");
}

#[test]
fn a_coded_message_renders_in_finnish_german_and_french() {
    let c = shipped();
    let t = MessageType::try_from("pq-information-request.answer").unwrap();
    let payload = json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES", "comment": "OK"}]});
    let fi = c.render(&t, &payload, "fi").unwrap();
    let de = c.render(&t, &payload, "de").unwrap();
    let fr = c.render(&t, &payload, "fr").unwrap();
    assert!(
        fi.contains("Onko tutkintotodistus aito?")
            && fi.contains("Kyllä")
            && fi.contains("Vastaukset"),
        "{fi}"
    );
    assert!(
        de.contains("Ist das Diplom echt?") && de.contains("Ja") && de.contains("Antworten"),
        "{de}"
    );
    assert!(
        fr.contains("Le diplôme est-il authentique ?")
            && fr.contains("Oui")
            && fr.contains("Réponses"),
        "{fr}"
    );
    assert!(fi.contains("OK"), "free text stays as sent: {fi}");
    assert!(c.render(&t, &payload, "xx").is_err());
}

fn bless() -> bool {
    std::env::var_os("IMI_BLESS").is_some()
}

#[test]
fn generated_form_schemas_and_reference_are_current() {
    let c = shipped();
    let dir = root().join("json/forms");
    let mut stale = Vec::new();
    let expected: Vec<(String, String)> = form_schemas(&c)
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_string_pretty(&schema).unwrap() + "\n"))
        .collect();
    if bless() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    let names: BTreeSet<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    for (name, text) in &expected {
        let path = dir.join(name);
        if bless() {
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names.contains(&name) {
            stale.push(format!("{name} (no longer in the catalogue)"));
        }
    }
    let reference = root().join("../docs/catalogue.md");
    let text = c.reference_markdown();
    if bless() {
        std::fs::write(&reference, &text).unwrap();
    } else if std::fs::read_to_string(&reference).ok().as_deref() != Some(text.as_str()) {
        stale.push("docs/catalogue.md".into());
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}; run `IMI_BLESS=1 cargo test -p imi-schemas`"
    );
}

/// Free-text pointers of a form (a string without enum, const, pattern or
/// format), walked here independently of the loader.
fn free_text(schema: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    let constrained = ["enum", "const", "pattern", "format"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if obj.get("type") == Some(&json!("string")) && !constrained && !at.is_empty() {
        out.insert(at.to_owned());
    }
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            free_text(sub, &format!("{at}/{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        free_text(items, &format!("{at}/*"), out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in obj
            .get(key)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            free_text(sub, at, out);
        }
    }
}

#[test]
fn every_free_text_field_of_every_form_is_personal_data_or_says_why_not() {
    let c = shipped();
    let mut unmarked = Vec::new();
    for p in c.procedures() {
        let mut fields = BTreeSet::new();
        for a in p.actions() {
            free_text(&a.form_schema, "", &mut fields);
        }
        for f in fields {
            let personal = p.personal_data.contains(&f);
            let exempt = p
                .not_personal_data
                .iter()
                .any(|(field, reason)| *field == f && !reason.trim().is_empty());
            if !personal && !exempt {
                unmarked.push(format!("{}: {f}", p.code));
            }
        }
    }
    assert!(unmarked.is_empty(), "free text not marked: {unmarked:#?}");
}

#[test]
fn every_deadline_names_its_source_and_every_state_and_action_reads_in_24_languages() {
    let c = shipped();
    for p in c.procedures() {
        for d in &p.deadlines {
            let source = d.source_text();
            assert!(
                source.len() > "default: ".len() + 10,
                "{}: deadline `{}` has no real source: {source}",
                p.code,
                d.code
            );
        }
        for lang in imi_schemas::catalogue::LANGUAGES {
            for s in &p.states {
                assert!(
                    c.state_label(p, s, lang).is_some(),
                    "{}: state {s} in {lang}",
                    p.code
                );
            }
            for a in p.actions() {
                assert!(
                    c.action_label(p, a.code.as_str(), lang).is_some(),
                    "{}: action {} in {lang}",
                    p.code,
                    a.code
                );
            }
        }
    }
}
