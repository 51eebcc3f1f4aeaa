// `sqlx::migrate!` embeds the migrations at compile time, but cargo does not
// know it reads that folder: without this, a new migration file is not built
// in until something else in the crate changes (CI reuses its target folder).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
