//! The audit log is one hash chain with signed checkpoints: logins and
//! failed logins land in it; `imi-hub audit verify` passes on the
//! log as written, then fails, naming the entry, on each kind of tampering:
//! a modified, a deleted, an inserted and a reordered entry, and entries cut
//! from the end.

use std::process::Command;

use imi_hub::accounts::{AccountRole, Scope};
use imi_hub::audit_log::checkpoints::read_file;
use imi_hub::audit_log::verify::{verify, Verdict};
use imi_tests::console::{console_account, ConsoleUser};
use imi_tests::TestEnv;
use sqlx::PgPool;

/// `imi-hub audit verify` on the test's configuration: (exit code, last line).
fn verify_command(env: &TestEnv) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_imi-hub-under-test"))
        .args(["audit", "verify", "--config"])
        .arg(env.write_config())
        .arg("--checkpoints")
        .arg(env.dir.join("audit-checkpoints.jsonl"))
        .output()
        .expect("imi-hub runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    (out.status.code().unwrap_or(-1), last)
}

async fn verdict(pool: &PgPool, env: &TestEnv) -> Verdict {
    let external = read_file(&env.dir.join("audit-checkpoints.jsonl")).unwrap();
    verify(pool, &external, None).await.unwrap()
}

fn broken(v: &Verdict) -> &str {
    v.broken.as_deref().unwrap_or("(intact)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_then_names_each_kind_of_tampering() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let pool = env.pool().await;
    // Entries: logins and failed logins.
    let (name, password) =
        console_account(&pool, "ops", AccountRole::Operator, Scope::default()).await;
    let mut ops = ConsoleUser::new(&hub.http, &name, &password);
    ops.log_in().await;
    let mut intruder = ConsoleUser::new(&hub.http, &name, "not-the-password-at-all");
    intruder.log_in_with("not-the-password-at-all").await;
    intruder.log_in_with("not-the-password-either").await;
    ConsoleUser::new(&hub.http, &name, &password).log_in().await;

    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(actions.iter().any(|a| a == "login"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "login_failed"), "{actions:?}");
    let n = actions.len() as i64;
    assert!(n >= 4, "{actions:?}");

    // A checkpoint signs the head, in the table and in the file.
    let signed = hub.audit_checkpoints.checkpoint_if_due(true).await.unwrap();
    assert_eq!(signed, Some(n));
    let intact = verdict(&pool, &env).await;
    assert_eq!(intact.broken, None);
    assert_eq!(intact.entries, n);
    assert_eq!(intact.checkpoints, 2, "the table's and the file's");
    assert_eq!(
        verify_command(&env),
        (0, format!("audit: {n} entries, chain intact"))
    );

    // Modified: one word of entry 2's detail.
    let original: serde_json::Value =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE seq = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE audit_events SET detail = detail || '{\"forged\": true}' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let v = verdict(&pool, &env).await;
    assert!(
        broken(&v).starts_with("entry 2 ") && broken(&v).ends_with("modified"),
        "{v:?}"
    );
    let (code, last) = verify_command(&env);
    assert_eq!(code, 1);
    assert!(last.starts_with("audit: entry 2 "), "{last}");
    sqlx::query("UPDATE audit_events SET detail = $1 WHERE seq = 2")
        .bind(&original)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(verdict(&pool, &env).await.broken, None, "restored");

    // Deleted: entry 3 goes (and comes back).
    let keep = "CREATE TABLE kept AS SELECT * FROM audit_events WHERE seq = 3";
    sqlx::query(keep).execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let v = verdict(&pool, &env).await;
    assert_eq!(broken(&v), "entry 3 is missing: deleted");
    sqlx::query("INSERT INTO audit_events SELECT * FROM kept")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(verdict(&pool, &env).await.broken, None, "restored");

    // Inserted: a row someone wrote beside the chain.
    sqlx::query(
        "INSERT INTO audit_events (account_name, action, detail) VALUES ('ops', 'view_exchange', '{}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let v = verdict(&pool, &env).await;
    assert!(
        broken(&v).contains("has no place in the chain: inserted"),
        "{v:?}"
    );
    sqlx::query("DELETE FROM audit_events WHERE seq IS NULL")
        .execute(&pool)
        .await
        .unwrap();

    // Reordered: entries 2 and 3 swap places.
    for sql in [
        "UPDATE audit_events SET seq = -2 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -2",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let v = verdict(&pool, &env).await;
    assert_eq!(
        broken(&v),
        "entry 2 is the entry written at place 3: reordered"
    );
    for sql in [
        "UPDATE audit_events SET seq = -2 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -2",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    assert_eq!(verdict(&pool, &env).await.broken, None, "restored");

    // Cut from the end: the last entry goes; the head and the signed
    // checkpoint both remember it.
    sqlx::query("DELETE FROM audit_events WHERE seq = $1")
        .bind(n)
        .execute(&pool)
        .await
        .unwrap();
    let v = verdict(&pool, &env).await;
    assert!(
        broken(&v).starts_with(&format!("entry {n} is missing")),
        "{v:?}"
    );
    let (code, last) = verify_command(&env);
    assert_eq!(code, 1);
    assert!(last.contains("deleted"), "{last}");
}
