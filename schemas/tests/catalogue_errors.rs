//! The loader refuses broken catalogues with precise errors: one test per
//! kind of error, each naming the file and the path inside it.

use imi_schemas::catalogue::{Catalogue, SourceFile, LANGUAGES};
use serde_json::{json, Value};

fn all(text: &str) -> Value {
    Value::Object(
        LANGUAGES
            .iter()
            .map(|l| (l.to_string(), json!(format!("{text} ({l})"))))
            .collect(),
    )
}

fn vocabulary() -> SourceFile {
    let v = json!({"answers": {"YES": all("Yes"), "NO": all("No")}, "fields": {"comment": all("Comment")},
                   "states": {"sent": all("Sent"), "answered": all("Answered")},
                   "actions": {"send": all("Send"), "answer": all("Answer")}});
    SourceFile {
        path: "common/vocabulary.yaml".into(),
        text: v.to_string(),
    }
}

fn area() -> SourceFile {
    let a = json!({"code": "xa", "legal_basis": "Directive X", "names": all("Area")});
    SourceFile {
        path: "xa/area.yaml".into(),
        text: a.to_string(),
    }
}

/// A small procedure that loads cleanly; each test breaks one thing.
fn procedure() -> Value {
    json!({
        "code": "xa-request",
        "area": "xa",
        "kind": "request",
        "names": all("Request"),
        "schema_versions": [1],
        "states": ["sent", "answered"],
        "recipients": {"rule": "one"},
        "deadlines": [{"code": "answer", "state": "sent", "period": {"working_days": 14},
                       "source": {"act": "Directive X", "article": "Art. 1"}}],
        "retention": {"block_after_closure_months": 6, "delete_after_closure_months": 36},
        "personal_data": ["/person"],
        "actions": [
            {"code": "send", "opens": true, "by": "requester", "to": "sent",
             "form": {"type": "object", "additionalProperties": false, "required": ["person", "questions"],
                      "properties": {"person": {"type": "string"},
                                     "questions": {"type": "array", "items": {"enum": ["XA-Q1"]}}}},
             "example": {"person": "Ann", "questions": ["XA-Q1"]}},
            {"code": "answer", "by": "responder", "from": ["sent"], "to": "answered",
             "form": {"type": "object", "properties": {"comment": {"type": "string"}}}}
        ],
        "questions": [{"code": "XA-Q1", "labels": all("Question"), "answers": ["YES", "NO"]}],
        "fields": {"person": all("Person"), "questions": all("Questions")}
    })
}

fn load(p: &Value) -> Result<Catalogue, Vec<(String, String, String)>> {
    let files = vec![
        vocabulary(),
        area(),
        SourceFile {
            path: "xa/request.yaml".into(),
            text: p.to_string(),
        },
    ];
    Catalogue::parse(&files).map_err(|e| {
        e.0.into_iter()
            .map(|e| (e.file, e.path, e.message))
            .collect()
    })
}

/// Loads `p`, expects exactly the error at `path` whose message contains `needle`.
fn refused(p: Value, path: &str, needle: &str) {
    let errors = load(&p).expect_err("the broken catalogue must be refused");
    assert!(
        errors
            .iter()
            .any(|(file, at, message)| file == "xa/request.yaml"
                && at == path
                && message.contains(needle)),
        "expected an error at `{path}` containing `{needle}`, got {errors:#?}"
    );
}

#[test]
fn the_control_catalogue_loads() {
    let c = load(&procedure()).unwrap();
    assert_eq!(c.procedures().count(), 1);
}

#[test]
fn an_unknown_state_is_refused() {
    let mut p = procedure();
    p["actions"][1]["to"] = json!("closed");
    refused(p, "actions[1].from/to", "unknown state `closed`");
}

#[test]
fn an_action_with_no_form_is_refused() {
    let mut p = procedure();
    p["actions"][1].as_object_mut().unwrap().remove("form");
    refused(p, "/actions/1", "\"form\" is a required property");
}

#[test]
fn a_label_missing_in_a_language_is_refused() {
    let mut p = procedure();
    p["questions"][0]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("ga");
    refused(p, "questions[0].labels", "label missing in `ga`");
}

#[test]
fn an_unknown_area_is_refused() {
    let mut p = procedure();
    p["area"] = json!("nowhere");
    refused(p, "area", "unknown area `nowhere`");
}

#[test]
fn two_opening_actions_are_refused() {
    let mut p = procedure();
    p["actions"][1]["opens"] = json!(true);
    p["actions"][1].as_object_mut().unwrap().remove("from");
    refused(p, "actions", "exactly one opening action, found 2");
}

#[test]
fn a_key_the_format_does_not_know_is_refused() {
    let mut p = procedure();
    p["colour"] = json!("blue");
    refused(p, "$", "colour");
}

#[test]
fn a_form_that_is_not_a_json_schema_is_refused() {
    let mut p = procedure();
    p["actions"][1]["form"] = json!({"type": "no-such-type"});
    refused(p, "actions[1].form", "not a valid JSON Schema");
}

#[test]
fn a_form_field_without_a_label_is_refused() {
    let mut p = procedure();
    p["actions"][1]["form"]["properties"]["unlabelled"] = json!({"type": "string"});
    refused(p, "fields", "no label for form field `unlabelled`");
}

#[test]
fn a_coded_value_without_a_label_is_refused() {
    let mut p = procedure();
    p["actions"][0]["form"]["properties"]["questions"]["items"]["enum"] = json!(["XA-Q1", "XA-Q2"]);
    refused(p, "codes", "no label for coded value `XA-Q2`");
}

#[test]
fn a_question_with_an_unknown_answer_option_is_refused() {
    let mut p = procedure();
    p["questions"][0]["answers"] = json!(["YES", "MAYBE"]);
    refused(p, "questions[0].answers", "unknown answer option `MAYBE`");
}

#[test]
fn an_example_its_form_refuses_is_refused() {
    let mut p = procedure();
    p["actions"][0]["example"] = json!({"person": "Ann"});
    refused(p, "actions[0].example", "questions");
}

#[test]
fn a_personal_data_pointer_to_no_field_is_refused() {
    let mut p = procedure();
    p["personal_data"] = json!(["/nobody"]);
    refused(p, "personal_data", "`/nobody` names no property");
}

#[test]
fn a_deadline_in_an_unknown_state_is_refused() {
    let mut p = procedure();
    p["deadlines"][0]["state"] = json!("pending");
    refused(p, "deadlines[0].state", "unknown state `pending`");
}

#[test]
fn yaml_that_does_not_parse_is_refused_with_its_line() {
    let files = vec![
        vocabulary(),
        area(),
        SourceFile {
            path: "xa/request.yaml".into(),
            text: "code: [unclosed".into(),
        },
    ];
    let errors = Catalogue::parse(&files).unwrap_err().0;
    assert!(errors[0].path.starts_with("line "), "{errors:?}");
    assert_eq!(errors[0].file, "xa/request.yaml");
}

#[test]
fn a_hand_over_by_the_requester_is_refused() {
    let mut p = procedure();
    p["actions"][0]["reassigns"] = json!(true);
    refused(
        p,
        "actions[0].reassigns",
        "only a responder's follow-up action",
    );
}

/// Whatever a catalogue file says, loading it never panics: a broken file
/// is refused with errors that name it.
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z_]{0,12}".prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every JSON pointer into `v` (the root included).
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    pointers(child, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn refused_with_named_errors(result: Result<Catalogue, Vec<(String, String, String)>>) {
        if let Err(errors) = result {
            assert!(!errors.is_empty(), "a refusal lists its errors");
            for (file, _, message) in errors {
                assert!(!file.is_empty() && !message.is_empty());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// One node of the control procedure replaced by any JSON value.
        #[test]
        fn a_procedure_with_any_node_replaced_loads_or_is_refused(
            choice in any::<prop::sample::Index>(),
            replacement in json_value(),
        ) {
            let mut p = procedure();
            let mut all = Vec::new();
            pointers(&p, String::new(), &mut all);
            let at = choice.get(&all).clone();
            if at.is_empty() {
                p = replacement;
            } else {
                *p.pointer_mut(&at).unwrap() = replacement;
            }
            refused_with_named_errors(load(&p));
        }

        /// The procedure file's text with bytes overwritten: not even YAML, often.
        #[test]
        fn a_procedure_file_with_garbled_bytes_is_refused_not_a_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut text = procedure().to_string().into_bytes();
            for (at, byte) in edits {
                let i = at.index(text.len());
                text[i] = byte;
            }
            let files = vec![
                vocabulary(),
                area(),
                SourceFile {
                    path: "xa/request.yaml".into(),
                    text: String::from_utf8_lossy(&text).into_owned(),
                },
            ];
            if let Err(e) = Catalogue::parse(&files) {
                prop_assert!(!e.0.is_empty());
            }
        }
    }
}

#[test]
fn a_deadline_without_a_source_is_refused() {
    let mut p = procedure();
    p["deadlines"][0].as_object_mut().unwrap().remove("source");
    refused(p, "deadlines[0].source", "`answer` names no source");
}

#[test]
fn a_deadline_with_two_periods_is_refused() {
    let mut p = procedure();
    p["deadlines"][0]["period"]["months"] = json!(1);
    refused(p, "deadlines[0].period", "exactly one of");
}

#[test]
fn a_deadline_from_an_event_no_action_marks_is_refused() {
    let mut p = procedure();
    p["deadlines"][0]["starts"] = json!("acceptance");
    refused(
        p,
        "deadlines",
        "starts at `acceptance`, which no action marks",
    );
    let mut marked = procedure();
    marked["deadlines"][0]["starts"] = json!("acceptance");
    marked["actions"][1]["marks"] = json!(["acceptance"]);
    load(&marked).expect("an event some action marks");
}

#[test]
fn a_state_without_a_label_is_refused() {
    let mut p = procedure();
    p["states"] = json!(["sent", "answered", "archived"]);
    refused(p, "states", "no label for state `archived`");
    let mut labelled = procedure();
    labelled["states"] = json!(["sent", "answered", "archived"]);
    labelled["state_labels"] = json!({"archived": all("Archived")});
    load(&labelled).expect("a procedure may label its own states");
}

#[test]
fn free_text_is_personal_data_unless_a_reason_says_otherwise() {
    let c = load(&procedure()).unwrap();
    let p = c.procedures().next().unwrap();
    // `/person` is listed; `/comment` (free text of the answer) is by rule.
    assert_eq!(p.personal_data, vec!["/comment", "/person"]);
    let mut exempt = procedure();
    exempt["not_personal_data"] = json!([{"field": "/comment", "reason": "never about a person"}]);
    let c = load(&exempt).unwrap();
    assert_eq!(
        c.procedures().next().unwrap().personal_data,
        vec!["/person"]
    );
    let mut unknown = procedure();
    unknown["not_personal_data"] = json!([{"field": "/questions", "reason": "coded"}]);
    refused(unknown, "not_personal_data[0]", "is not a free-text field");
}

#[test]
fn a_glossary_label_that_does_not_use_the_official_term_is_refused() {
    let glossary = |term: &str| SourceFile {
        path: "common/glossary/de.yaml".into(),
        text: json!({"language": "de", "terms": {"question": {
            "term": term, "act": "Directive X", "labels": ["procedure:xa-request"]}}})
        .to_string(),
    };
    let files = |g: SourceFile| {
        vec![
            vocabulary(),
            area(),
            SourceFile {
                path: "xa/request.yaml".into(),
                text: procedure().to_string(),
            },
            g,
        ]
    };
    // The German name is "Request (de)".
    Catalogue::parse(&files(glossary("Requests"))).expect("an inflected form uses the term");
    let errors = Catalogue::parse(&files(glossary("Ersuchen"))).expect_err("another word");
    assert!(
        errors.0.iter().any(|e| e.file == "common/glossary/de.yaml"
            && e.message.contains("not the official term \"Ersuchen\"")),
        "{errors:#?}"
    );
}
