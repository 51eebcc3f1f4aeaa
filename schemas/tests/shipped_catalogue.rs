//! The catalogue shipped in `schemas/catalogue` loads, and its forms accept a
//! realistic payload and refuse wrong ones with JSON pointers.

use std::path::Path;

use imi_schemas::catalogue::{Catalogue, SourceFile};
use imi_schemas::ids::MessageType;
use serde_json::json;

fn read_dir(dir: &Path, out: &mut Vec<SourceFile>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_dir(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(SourceFile {
                text: std::fs::read_to_string(&path).unwrap(),
                path: path.display().to_string(),
            });
        }
    }
}

fn shipped() -> Catalogue {
    let mut files = Vec::new();
    read_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue"),
        &mut files,
    );
    Catalogue::parse(&files).unwrap()
}

fn diploma_request() -> serde_json::Value {
    json!({
        "professional": {"family_name": "Virtanen", "given_names": "Aino", "date_of_birth": "1988-04-12"},
        "profession": "PQ-NURSE",
        "diploma": {"title": "Sairaanhoitaja (AMK)", "awarded_by": "Metropolia", "awarded_on": "2012-06-01"},
        "questions": ["PQ-Q-DIPLOMA-AUTHENTIC", "PQ-Q-GOOD-STANDING"],
        "requested_answer_date": "2026-12-15"
    })
}

#[test]
fn the_diploma_request_accepts_a_realistic_payload() {
    let catalogue = shipped();
    let t = MessageType::try_from("pq-information-request.send").unwrap();
    let (_, action) = catalogue.resolve(&t).unwrap();
    assert!(action.opens);
    action.validate(&diploma_request()).unwrap();
}

#[test]
fn a_wrong_payload_is_refused_with_the_pointer_of_the_field() {
    let catalogue = shipped();
    let t = MessageType::try_from("pq-information-request.send").unwrap();
    let (_, action) = catalogue.resolve(&t).unwrap();
    let mut payload = diploma_request();
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
fn a_broken_catalogue_is_refused_naming_file_and_place() {
    let area = SourceFile {
        path: "pq/area.yaml".into(),
        text: "code: pq\nlegal_basis: x\nnames: {en: PQ}\n".into(),
    };
    let procedure = SourceFile {
        path: "pq/broken.yaml".into(),
        text: r#"
code: pq-broken
area: pq
kind: request
names: {en: Broken}
schema_versions: [1]
states: [sent]
actions:
  - {code: send, opens: true, by: requester, to: nowhere, form: {type: object}}
"#
        .into(),
    };
    let errors = Catalogue::parse(&[area, procedure]).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].file, "pq/broken.yaml");
    assert_eq!(errors.0[0].path, "actions[0].from/to");
    assert!(errors.0[0].message.contains("nowhere"));
}
