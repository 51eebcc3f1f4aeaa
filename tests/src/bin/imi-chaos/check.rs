//! The invariant checker: what senders were told, what applications
//! received, and what the database holds, compared.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use imi_schemas::catalogue::{Catalogue, SourceFile};
use imi_tests::TestEnv;

use crate::faults::Fault;
use crate::load::{Kind, World};

pub(crate) struct Report {
    sent: usize,
    accepted: usize,
    refused: BTreeMap<String, usize>,
    send_errors: u64,
    delivered: usize,
    lost_unanswered: usize,
    lost_undelivered: usize,
    lost_unstored: usize,
    flooded: usize,
    /// Flood messages without their rejection (the SDK drops a rejection
    /// seen twice, so more than one each cannot show here).
    flood_unanswered: usize,
    duplicated: usize,
    orphans: Vec<(&'static str, i64)>,
    illegal: Vec<(&'static str, i64)>,
    recovery: BTreeMap<&'static str, Vec<Duration>>,
    kills: usize,
    faults: usize,
    loaded: Duration,
}

pub(crate) async fn run(
    env: &TestEnv,
    world: &World,
    faults: &[Fault],
    loaded: Duration,
) -> anyhow::Result<Report> {
    let (mut report, accepted_ids) = tally(world, faults, loaded);
    let pool = env.pool().await;
    // Every accepted message is in the database.
    let stored: HashSet<String> = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM messages")
        .fetch_all(&pool)
        .await?
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    report.lost_unstored = accepted_ids
        .iter()
        .filter(|id| !stored.contains(*id))
        .count();

    for (name, sql) in [
        ("batches never published", "SELECT count(*) FROM batches WHERE published_at IS NULL"),
        (
            "exchanges without a message",
            "SELECT count(*) FROM exchanges e WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.exchange_id = e.id)",
        ),
        (
            "transitions without their message",
            "SELECT count(*) FROM transitions t WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = t.message_id)",
        ),
        (
            "deliveries without their message",
            "SELECT count(*) FROM outbox o WHERE o.kind = 'delivery' AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id::text = o.source_message_id)",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        report.orphans.push((name, n));
    }

    let files = imi_schemas::catalogue::read_folder(&env.config.catalogue_dir)?;
    let catalogue =
        Catalogue::parse(&files as &[SourceFile]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let states: Vec<(String, String)> = sqlx::query_as("SELECT procedure, state FROM exchanges")
        .fetch_all(&pool)
        .await?;
    let unknown_state = states
        .iter()
        .filter(|(p, s)| {
            !catalogue
                .procedures()
                .any(|proc_| proc_.code.as_str() == p && proc_.states.iter().any(|x| x == s))
        })
        .count() as i64;
    report
        .illegal
        .push(("state not in its procedure", unknown_state));
    let diverged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM exchanges e
          WHERE e.state <> (SELECT t.to_state FROM transitions t WHERE t.exchange_id = e.id ORDER BY t.id DESC LIMIT 1)",
    )
    .fetch_one(&pool)
    .await?;
    report
        .illegal
        .push(("state not the last transition's", diverged));
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT exchange_id, action FROM transitions
          WHERE action IN ('pq-information-request.accept', 'pq-information-request.answer', 'accept', 'answer')
          GROUP BY 1, 2 HAVING count(*) > 1) x",
    )
    .fetch_one(&pool)
    .await?;
    report
        .illegal
        .push(("a request accepted or answered twice", twice));
    pool.close().await;
    Ok(report)
}

/// What the applications' records say, before the database is asked.
fn tally(world: &World, faults: &[Fault], loaded: Duration) -> (Report, Vec<String>) {
    let r = world.records.lock().unwrap();
    let mut report = Report {
        sent: r.sent.len(),
        accepted: 0,
        refused: BTreeMap::new(),
        send_errors: r.send_errors,
        delivered: 0,
        lost_unanswered: 0,
        lost_undelivered: 0,
        lost_unstored: 0,
        flooded: r.flooded,
        flood_unanswered: r.flooded.saturating_sub(r.flood_refused),
        duplicated: r
            .handed
            .values()
            .map(|n| (*n as usize).saturating_sub(1))
            .sum(),
        orphans: Vec::new(),
        illegal: Vec::new(),
        recovery: BTreeMap::new(),
        kills: faults.iter().filter(|f| f.kind == "SIGKILL a hub").count(),
        faults: faults.len(),
        loaded,
    };
    let mut accepted_ids: Vec<String> = Vec::new();
    for (id, sent) in &r.sent {
        if let Some(code) = r.rejections.get(id) {
            *report.refused.entry(code.clone()).or_default() += 1;
            continue;
        }
        let Some(receipt) = r.receipts.get(id) else {
            report.lost_unanswered += 1;
            continue;
        };
        report.accepted += 1;
        accepted_ids.push(id.clone());
        let key = match sent.kind {
            Kind::Alert => format!("alert:{}", receipt.exchange),
            _ => id.clone(),
        };
        for e in world.expected_endpoints(sent, receipt) {
            if r.handed.contains_key(&(e, key.clone())) {
                report.delivered += 1;
            } else {
                report.lost_undelivered += 1;
            }
        }
    }
    // Recovery: from the end of each fault to the first receipt of a
    // message sent after it.
    let mut answered: Vec<(std::time::Instant, std::time::Instant)> = r
        .sent
        .iter()
        .filter_map(|(id, s)| r.receipts.get(id).map(|rc| (s.at, rc.at)))
        .collect();
    answered.sort();
    for f in faults {
        let first = answered
            .iter()
            .filter(|(sent, _)| *sent >= f.ended)
            .map(|(_, receipt)| *receipt)
            .min();
        if let Some(at) = first {
            report
                .recovery
                .entry(f.kind)
                .or_default()
                .push(at - f.ended);
        }
    }
    (report, accepted_ids)
}

fn median_max(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

impl Report {
    /// Prints the figures; true when nothing was lost, duplicated,
    /// orphaned or illegal.
    pub(crate) fn print(mut self) -> bool {
        let lost = self.lost_unanswered
            + self.lost_undelivered
            + self.lost_unstored
            + self.flood_unanswered;
        let orphans: i64 = self.orphans.iter().map(|(_, n)| n).sum();
        let illegal: i64 = self.illegal.iter().map(|(_, n)| n).sum();
        println!(
            "faults: {} in {:.0} s ({} SIGKILLs of a hub)",
            self.faults,
            self.loaded.as_secs_f64(),
            self.kills
        );
        println!(
            "sent (confirmed by the broker): {}, accepted (receipt): {}, refused: {:?}, sends given up by the SDK: {}",
            self.sent, self.accepted, self.refused, self.send_errors
        );
        println!(
            "delivered to the recipients' applications: {} (throughput under chaos: {:.1} accepted messages/s)",
            self.delivered,
            self.accepted as f64 / self.loaded.as_secs_f64()
        );
        println!(
            "lost: {} without a receipt or rejection, {} receipted but not delivered, {} receipted but not stored",
            self.lost_unanswered, self.lost_undelivered, self.lost_unstored
        );
        if self.flooded > 0 {
            println!(
                "flood: {} tiny invalid messages confirmed, {} without their rejection",
                self.flooded, self.flood_unanswered
            );
        }
        println!("duplicated to an application: {}", self.duplicated);
        for (name, n) in &self.orphans {
            println!("orphans: {name}: {n}");
        }
        for (name, n) in &self.illegal {
            println!("illegal: {name}: {n}");
        }
        for (kind, v) in self.recovery.iter_mut() {
            let (median, max) = median_max(v);
            println!(
                "recovery after {kind} ({}): median {:.2} s, max {:.2} s",
                v.len(),
                median.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        println!(
            "chaos: lost {lost}, duplicated {}, orphans {orphans}, illegal {illegal}",
            self.duplicated
        );
        lost == 0 && self.duplicated == 0 && orphans == 0 && illegal == 0
    }
}
