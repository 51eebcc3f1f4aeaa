//! Glossaries (`common/glossary/<lang>.yaml`): the official term of each key
//! concept in one language, and the labels that name the concept. A label
//! must use the term, allowing for inflection, so that one wrong word in one
//! file cannot contradict the act.

use super::check::Checker;
use super::compiled::{Catalogue, LANGUAGES};
use super::model::{GlossaryFile, Labels};

pub(super) fn check_glossary(
    ck: &mut Checker,
    file: &str,
    g: &GlossaryFile,
    catalogue: &Catalogue,
) {
    let Some(lang) = LANGUAGES.iter().find(|l| **l == g.language) else {
        ck.err(
            file,
            "language",
            format!("`{}` is not one of the 24 official languages", g.language),
        );
        return;
    };
    for (concept, term) in &g.terms {
        if term.term.trim().is_empty() {
            ck.err(file, format!("terms.{concept}.term"), "is empty");
        }
        for reference in &term.labels {
            let labels = labels_named(catalogue, reference);
            if labels.is_empty() {
                ck.err(
                    file,
                    format!("terms.{concept}.labels"),
                    format!("`{reference}` names no label of the catalogue"),
                );
            }
            for label in labels.iter().filter_map(|l| l.get(*lang)) {
                if !uses_term(label, &term.term) {
                    ck.err(
                        file,
                        format!("terms.{concept}"),
                        format!(
                            "`{reference}` reads \"{label}\", not the official term \"{}\"",
                            term.term
                        ),
                    );
                }
            }
        }
    }
}

/// Every label a reference such as `code:PQ-NURSE` names (a code or field
/// may be labelled in several procedures).
fn labels_named<'a>(catalogue: &'a Catalogue, reference: &str) -> Vec<&'a Labels> {
    let Some((kind, key)) = reference.split_once(':') else {
        return Vec::new();
    };
    let v = &catalogue.vocabulary;
    let procedures = || catalogue.procedures.values();
    match kind {
        "procedure" => procedures()
            .filter(|p| p.code.as_str() == key)
            .map(|p| &p.names)
            .collect(),
        "area" => catalogue
            .areas
            .values()
            .filter(|a| a.code.as_str() == key)
            .map(|a| &a.names)
            .collect(),
        "code" => v
            .codes
            .get(key)
            .into_iter()
            .chain(procedures().filter_map(|p| p.codes.get(key)))
            .collect(),
        // `field:<procedure>/<name>`: one procedure's label of the field
        // (its own, else the shared one), for a name that means different
        // things in different procedures.
        "field" => match key.split_once('/') {
            Some((procedure, name)) => procedures()
                .filter(|p| p.code.as_str() == procedure)
                .filter_map(|p| p.fields.get(name).or_else(|| v.fields.get(name)))
                .collect(),
            None => v
                .fields
                .get(key)
                .into_iter()
                .chain(procedures().filter_map(|p| p.fields.get(key)))
                .collect(),
        },
        "answer" => v
            .answers
            .get(key)
            .into_iter()
            .chain(procedures().filter_map(|p| p.answers.get(key)))
            .collect(),
        "state" => v
            .states
            .get(key)
            .into_iter()
            .chain(procedures().filter_map(|p| p.state_labels.get(key)))
            .collect(),
        "action" => v
            .actions
            .get(key)
            .into_iter()
            .chain(procedures().filter_map(|p| p.action_labels.get(key)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Does `label` use every word of `term`? A word matches a word of the label
/// that shares its first max(3, length − 3) letters, case-insensitively:
/// enough for the endings of inflected languages ("europska strukovna
/// iskaznica" in "europske strukovne iskaznice"), not for another word.
pub(crate) fn uses_term(label: &str, term: &str) -> bool {
    let words = |s: &str| -> Vec<Vec<char>> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase().chars().collect())
            .collect()
    };
    let in_label = words(label);
    words(term).iter().all(|t| {
        let need = t.len().saturating_sub(3).max(3).min(t.len());
        in_label
            .iter()
            .any(|w| w.len() >= need && w[..need] == t[..need])
    })
}

#[cfg(test)]
mod tests {
    use super::uses_term;

    #[test]
    fn inflected_forms_use_the_term() {
        assert!(uses_term(
            "Provjera europske strukovne iskaznice",
            "europska strukovna iskaznica"
        ));
        assert!(uses_term(
            "Europäischen Berufsausweises",
            "Europäischer Berufsausweis"
        ));
        assert!(uses_term("Ní fios", "Ní fios"));
    }

    #[test]
    fn another_word_does_not() {
        assert!(!uses_term(
            "Pflegefachkraft",
            "Krankenschwester/Krankenpfleger für allgemeine Pflege"
        ));
        assert!(!uses_term("Aktenzeichen des Diploms", "Nummer des Diploms"));
        assert!(!uses_term("Sconosciuto", "non noto"));
    }
}
