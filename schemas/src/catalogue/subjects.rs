//! Who a payload is about: the identifying fields of a procedure's forms,
//! found by rule among its personal-data pointers, and the identities they
//! hold in one payload, in a canonical spelling. The hub keeps only a keyed
//! hash of each identity (`subject_index`), so a data subject's exchanges
//! are found without a readable copy of their name (docs/data-subjects.md).
//!
//! The rule (docs/catalogue-format.md, "Data subjects"): an object with
//! `family_name`, `given_names` and `date_of_birth` among the personal data
//! names a person by name with date of birth; a personal-data field named as
//! a national identifier ([`NATIONAL_ID_FIELDS`]) names one by that number.

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// Field names that hold a person's national or document identifier.
pub const NATIONAL_ID_FIELDS: [&str; 4] = [
    "national_identifier",
    "identity_document_number",
    "driving_licence_number",
    "personal_identification_number",
];

/// Where one procedure's payloads name a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifyingFields {
    /// The object at `object` (a pointer, `*` for any array index) holds
    /// `family_name`, `given_names` and `date_of_birth`.
    NameAndBirthDate { object: String },
    /// The field at `pointer` holds a national identifier.
    NationalId { pointer: String },
}

/// One person as a payload or a search names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    NameAndBirthDate {
        family_name: String,
        given_names: String,
        /// `YYYY-MM-DD`.
        date_of_birth: String,
    },
    NationalId(String),
}

impl Identity {
    /// The bytes that are hashed: a kind tag and the fields in canonical
    /// spelling (case, accents, punctuation and spacing do not matter), so
    /// `Müller-Lüdenscheidt, Hans` finds `MULLER LUDENSCHEIDT, hans`.
    /// `None` when a field is empty once canonical or the date is no date.
    pub fn canonical(&self) -> Option<Vec<u8>> {
        match self {
            Identity::NameAndBirthDate {
                family_name,
                given_names,
                date_of_birth,
            } => {
                let family = canonical_name(family_name);
                let given = canonical_name(given_names);
                let date =
                    chrono::NaiveDate::parse_from_str(date_of_birth.trim(), "%Y-%m-%d").ok()?;
                (!family.is_empty() && !given.is_empty())
                    .then(|| format!("name-dob\u{0}{family}\u{0}{given}\u{0}{date}").into_bytes())
            }
            Identity::NationalId(id) => {
                let id: String = id
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_uppercase)
                    .collect();
                (!id.is_empty()).then(|| format!("national-id\u{0}{id}").into_bytes())
            }
        }
    }
}

/// Lower case, accents dropped (NFKD without combining marks), every run of
/// other characters than letters and digits one space.
fn canonical_name(text: &str) -> String {
    let folded: String = text
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The identifying fields among `personal_data` pointers, by the rule.
pub fn identifying_fields(personal_data: &[String]) -> Vec<IdentifyingFields> {
    let mut found = Vec::new();
    for pointer in personal_data {
        let Some((object, field)) = pointer.rsplit_once('/') else {
            continue;
        };
        if field == "family_name"
            && ["given_names", "date_of_birth"]
                .iter()
                .all(|f| personal_data.contains(&format!("{object}/{f}")))
        {
            found.push(IdentifyingFields::NameAndBirthDate {
                object: object.to_owned(),
            });
        }
        if NATIONAL_ID_FIELDS.contains(&field) {
            found.push(IdentifyingFields::NationalId {
                pointer: pointer.clone(),
            });
        }
    }
    found
}

/// The identities a payload holds at `fields`.
pub fn identities(fields: &[IdentifyingFields], payload: &Value) -> Vec<Identity> {
    let mut out = Vec::new();
    for f in fields {
        match f {
            IdentifyingFields::NameAndBirthDate { object } => {
                for o in resolve(payload, object) {
                    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
                    if let (Some(family_name), Some(given_names), Some(date_of_birth)) = (
                        text("family_name"),
                        text("given_names"),
                        text("date_of_birth"),
                    ) {
                        out.push(Identity::NameAndBirthDate {
                            family_name,
                            given_names,
                            date_of_birth,
                        });
                    }
                }
            }
            IdentifyingFields::NationalId { pointer } => {
                for v in resolve(payload, pointer) {
                    if let Some(id) = v.as_str() {
                        out.push(Identity::NationalId(id.to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// The values at a pointer whose `*` segments stand for every array index.
fn resolve<'v>(value: &'v Value, pointer: &str) -> Vec<&'v Value> {
    let mut here = vec![value];
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        here = here
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (v, segment.as_str()) {
                    (Value::Array(items), "*") => items.iter().collect(),
                    (Value::Array(items), i) => i
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| items.get(i))
                        .into_iter()
                        .collect(),
                    (Value::Object(map), key) => map.get(key).into_iter().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    here
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointers(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_person_is_named_by_name_with_birth_date_or_by_a_national_identifier() {
        let fields = identifying_fields(&pointers(&[
            "/professional/family_name",
            "/professional/given_names",
            "/professional/date_of_birth",
            "/contact/family_name",
            "/contact/given_names",
            "/acquirers/*/identity_document_number",
        ]));
        assert_eq!(
            fields,
            vec![
                IdentifyingFields::NameAndBirthDate {
                    object: "/professional".into()
                },
                IdentifyingFields::NationalId {
                    pointer: "/acquirers/*/identity_document_number".into()
                },
            ],
            "a name without a birth date identifies nobody"
        );
        let payload = json!({
            "professional": {"family_name": "Müller", "given_names": "Hans", "date_of_birth": "1980-02-03"},
            "contact": {"family_name": "Other", "given_names": "Person"},
            "acquirers": [{"identity_document_number": "AB 123"}, {"identity_document_number": "CD-456"}],
        });
        let found = identities(&fields, &payload);
        assert_eq!(found.len(), 3);
        assert_eq!(found[2], Identity::NationalId("CD-456".into()));
    }

    #[test]
    fn spelling_case_accents_and_punctuation_do_not_matter() {
        let a = Identity::NameAndBirthDate {
            family_name: "Müller-Lüdenscheidt".into(),
            given_names: "Hans  Peter".into(),
            date_of_birth: "1980-02-03".into(),
        };
        let b = Identity::NameAndBirthDate {
            family_name: "MULLER LUDENSCHEIDT".into(),
            given_names: "hans peter".into(),
            date_of_birth: " 1980-02-03".into(),
        };
        assert_eq!(a.canonical(), b.canonical());
        let other_day = Identity::NameAndBirthDate {
            family_name: "Müller-Lüdenscheidt".into(),
            given_names: "Hans Peter".into(),
            date_of_birth: "1980-02-04".into(),
        };
        assert_ne!(a.canonical(), other_day.canonical());
        assert_eq!(
            Identity::NationalId("ab-123 456".into()).canonical(),
            Identity::NationalId("AB123456".into()).canonical()
        );
        assert_ne!(
            Identity::NationalId("AB123456".into()).canonical(),
            a.canonical()
        );
    }

    #[test]
    fn an_empty_name_or_a_date_that_is_no_date_names_nobody() {
        let no_date = Identity::NameAndBirthDate {
            family_name: "A".into(),
            given_names: "B".into(),
            date_of_birth: "03/02/1980".into(),
        };
        assert_eq!(no_date.canonical(), None);
        let no_name = Identity::NameAndBirthDate {
            family_name: " - ".into(),
            given_names: "B".into(),
            date_of_birth: "1980-02-03".into(),
        };
        assert_eq!(no_name.canonical(), None);
        assert_eq!(Identity::NationalId("--".into()).canonical(), None);
    }
}
