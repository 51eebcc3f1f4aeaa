//! `imi-hub catalogue check` as an operator runs it.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_imi-hub-under-test"))
        .args(["catalogue", "check"])
        .arg(dir)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_shipped_catalogue_checks_clean_with_its_summary_last() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/catalogue");
    let (ok, out) = check(&dir);
    let last = out.lines().last().unwrap_or_default();
    assert!(ok, "{out}");
    assert!(
        last.starts_with("areas: ") && last.ends_with("languages complete: 24/24"),
        "{last}"
    );
}

#[test]
fn a_broken_catalogue_fails_naming_file_and_path() {
    let dir = std::env::temp_dir().join(format!("imi-cat-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("xa")).unwrap();
    std::fs::write(
        dir.join("xa/area.yaml"),
        "code: xa\nlegal_basis: X\nnames: {en: X}\n",
    )
    .unwrap();
    let (ok, out) = check(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("xa/area.yaml: names: label missing in `bg`"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap_or_default()
            .contains("languages complete: 1/24"),
        "{out}"
    );
}
