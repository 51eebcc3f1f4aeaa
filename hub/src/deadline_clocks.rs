//! The clocks of deadlines that run while an exchange is in some states
//! (docs/catalogue-format.md, "Deadlines"). The pipeline does not compute
//! them: the deadline checker does, for each exchange that changed since its
//! clock was last computed (`computed_for` = the exchange's `updated_at`),
//! by replaying the exchange's history through the catalogue's pure
//! [`Deadline::clock`]. The hot path stays as fast as before, and whichever
//! hub instance computes a clock computes the same one. The pages people
//! read compute one exchange's clocks the same way, on the spot
//! ([`running_now`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use imi_schemas::catalogue::{
    Catalogue, Clock, Deadline, DeadlineRuns, HistoryStep, Procedure, Role,
};
use imi_schemas::ids::ActionCode;
use sqlx::{PgPool, Postgres, Transaction};
use tracing::instrument;
use uuid::Uuid;

use crate::error::HubError;

/// Exchanges whose clocks are recomputed per query.
const PAGE: i64 = 500;

/// An exchange whose clock is missing or stale.
#[derive(sqlx::FromRow)]
struct Changed {
    id: Uuid,
    requester: String,
    responder: String,
    updated_at: DateTime<Utc>,
}

/// One step of an exchange's history, as stored.
#[derive(sqlx::FromRow)]
struct StoredStep {
    exchange_id: Uuid,
    action: String,
    to_state: String,
    at: DateTime<Utc>,
    /// Only read when the deadline needs payloads.
    raw: Option<Vec<u8>>,
}

/// Brings the clocks of `deadline` up to date for every exchange of
/// `procedure` in a state it runs in. Returns how many were computed.
#[instrument(skip_all, fields(procedure = %procedure.code, deadline = %deadline.code))]
pub(crate) async fn refresh(
    tx: &mut Transaction<'_, Postgres>,
    catalogue: &Catalogue,
    procedure: &Procedure,
    deadline: &Deadline,
    acting: Role,
) -> Result<usize, HubError> {
    let DeadlineRuns::InStates { states, .. } = &deadline.runs else {
        return Ok(0);
    };
    let needs_payloads = deadline.agreed_date || deadline.if_field.is_some();
    let mut computed = 0;
    loop {
        let changed: Vec<Changed> = sqlx::query_as(
            "SELECT e.id, e.requester, e.responder, e.updated_at
             FROM exchanges e
             LEFT JOIN deadline_clocks c ON c.exchange_id = e.id AND c.deadline = $3
             WHERE e.procedure = $1 AND e.state = ANY($2)
               AND (c.exchange_id IS NULL OR c.computed_for <> e.updated_at)
             LIMIT $4",
        )
        .bind(procedure.code.as_str())
        .bind(states)
        .bind(&deadline.code)
        .bind(PAGE)
        .fetch_all(&mut **tx)
        .await?;
        if changed.is_empty() {
            return Ok(computed);
        }
        let ids: Vec<Uuid> = changed.iter().map(|c| c.id).collect();
        let steps: Vec<StoredStep> = sqlx::query_as(
            "SELECT t.exchange_id, t.action, t.to_state, t.at,
                    CASE WHEN $2 THEN m.raw END AS raw
             FROM transitions t LEFT JOIN messages m ON m.id = t.message_id
             WHERE t.exchange_id = ANY($1)
             ORDER BY t.exchange_id, t.id",
        )
        .bind(&ids)
        .bind(needs_payloads)
        .fetch_all(&mut **tx)
        .await?;
        let mut histories: HashMap<Uuid, Vec<StoredStep>> = HashMap::new();
        for mut s in steps {
            if let Some(raw) = &mut s.raw {
                crate::at_rest::open_in_place(raw);
            }
            histories.entry(s.exchange_id).or_default().push(s);
        }
        let mut rows = ClockRows::default();
        for c in &changed {
            let history = histories.remove(&c.id).unwrap_or_default();
            let authority = match acting {
                Role::Responder => &c.responder,
                Role::Requester => &c.requester,
            };
            let calendar = catalogue.calendar(authority.get(..2).unwrap_or_default());
            let clock = deadline.clock(&replayable(procedure, &history).steps(), &calendar);
            rows.push(c.id, c.updated_at, clock);
        }
        computed += changed.len();
        sqlx::query(
            "INSERT INTO deadline_clocks (exchange_id, deadline, computed_for, started_at, due_at, stopped_left_secs)
             SELECT u.id, $1, u.computed_for, u.started_at, u.due_at, u.left_secs
             FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::float8[])
                  AS u(id, computed_for, started_at, due_at, left_secs)
             ON CONFLICT (exchange_id, deadline) DO UPDATE
             SET computed_for = excluded.computed_for, started_at = excluded.started_at,
                 due_at = excluded.due_at, stopped_left_secs = excluded.stopped_left_secs",
        )
        .bind(&deadline.code)
        .bind(&rows.ids)
        .bind(&rows.computed_for)
        .bind(&rows.started_at)
        .bind(&rows.due_at)
        .bind(&rows.left_secs)
        .execute(&mut **tx)
        .await?;
        if (changed.len() as i64) < PAGE {
            return Ok(computed);
        }
    }
}

/// Column arrays for one upsert.
#[derive(Default)]
struct ClockRows {
    ids: Vec<Uuid>,
    computed_for: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    due_at: Vec<Option<DateTime<Utc>>>,
    left_secs: Vec<Option<f64>>,
}

impl ClockRows {
    fn push(&mut self, id: Uuid, computed_for: DateTime<Utc>, clock: Clock) {
        let (started, due, left) = match clock {
            Clock::Off => (None, None, None),
            Clock::Running { started_at, due_at } => (Some(started_at), Some(due_at), None),
            Clock::Stopped { started_at, left } => (
                Some(started_at),
                None,
                left.map(|l| l.num_milliseconds() as f64 / 1000.0),
            ),
        };
        self.ids.push(id);
        self.computed_for.push(computed_for);
        self.started_at.push(started);
        self.due_at.push(due);
        self.left_secs.push(left);
    }
}

/// A stored history with its payloads parsed, ready to be replayed.
struct Replayable<'a> {
    procedure: &'a Procedure,
    steps: Vec<(&'a StoredStep, Option<serde_json::Value>)>,
}

fn replayable<'a>(procedure: &'a Procedure, history: &'a [StoredStep]) -> Replayable<'a> {
    Replayable {
        procedure,
        steps: history
            .iter()
            .map(|s| {
                let payload = s
                    .raw
                    .as_deref()
                    .and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
                    .and_then(|mut body| body.get_mut("payload").map(serde_json::Value::take));
                (s, payload)
            })
            .collect(),
    }
}

impl Replayable<'_> {
    fn steps(&self) -> Vec<HistoryStep<'_>> {
        self.steps
            .iter()
            .map(|(s, payload)| HistoryStep {
                events: ActionCode::try_from(s.action.as_str())
                    .ok()
                    .and_then(|code| self.procedure.action(&code))
                    .map(|a| a.events())
                    .unwrap_or_default(),
                to: &s.to_state,
                at: s.at,
                payload: payload.as_ref(),
            })
            .collect()
    }
}

/// A deadline's clock for one exchange, computed now.
#[derive(Debug, Clone)]
pub(crate) struct RunningNow {
    pub(crate) deadline: String,
    pub(crate) started_at: DateTime<Utc>,
    /// `None`: stopped by a request for more information.
    pub(crate) due_at: Option<DateTime<Utc>>,
}

/// The clocks running (or stopped) in an exchange's current `state`,
/// computed from its history now, for the pages people read: the same
/// replay as the checker's, so a page never waits for the next pass.
#[instrument(skip_all, fields(exchange = %exchange_id))]
pub(crate) async fn running_now(
    pool: &PgPool,
    catalogue: &Catalogue,
    procedure: &Procedure,
    exchange_id: Uuid,
    state: &str,
    parties: (&str, &str),
    acting: impl Fn(&Deadline) -> Role,
) -> Result<Vec<RunningNow>, sqlx::Error> {
    let relevant: Vec<&Deadline> = procedure
        .deadlines
        .iter()
        .filter(|d| matches!(&d.runs, DeadlineRuns::InStates { states, .. } if states.iter().any(|s| s == state)))
        .collect();
    if relevant.is_empty() {
        return Ok(Vec::new());
    }
    let needs_payloads = relevant
        .iter()
        .any(|d| d.agreed_date || d.if_field.is_some());
    let mut history: Vec<StoredStep> = sqlx::query_as(
        "SELECT t.exchange_id, t.action, t.to_state, t.at,
                CASE WHEN $2 THEN m.raw END AS raw
         FROM transitions t LEFT JOIN messages m ON m.id = t.message_id
         WHERE t.exchange_id = $1
         ORDER BY t.id",
    )
    .bind(exchange_id)
    .bind(needs_payloads)
    .fetch_all(pool)
    .await?;
    for s in &mut history {
        if let Some(raw) = &mut s.raw {
            crate::at_rest::open_in_place(raw);
        }
    }
    let (requester, responder) = parties;
    let replay = replayable(procedure, &history);
    let steps = replay.steps();
    Ok(relevant
        .into_iter()
        .map(|d| {
            let authority = match acting(d) {
                Role::Responder => responder,
                Role::Requester => requester,
            };
            let calendar = catalogue.calendar(authority.get(..2).unwrap_or_default());
            (d, d.clock(&steps, &calendar))
        })
        .filter_map(|(d, clock)| match clock {
            Clock::Off => None,
            Clock::Running { started_at, due_at } => Some(RunningNow {
                deadline: d.code.clone(),
                started_at,
                due_at: Some(due_at),
            }),
            Clock::Stopped { started_at, .. } => Some(RunningNow {
                deadline: d.code.clone(),
                started_at,
                due_at: None,
            }),
        })
        .collect())
}

/// A fingerprint of what clocks are computed with: every procedure's
/// deadlines and every calendar.
fn basis_of(catalogue: &Catalogue) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in catalogue.procedures() {
        h.update(format!("{}{:?}", p.code, p.deadlines).as_bytes());
    }
    for (country, calendar) in catalogue.calendars() {
        h.update(format!("{country}{calendar:?}").as_bytes());
    }
    hex::encode(h.finalize())
}

/// Drops the stored clocks when the catalogue's deadlines or calendars
/// changed since they were computed (a reload, a new release), so the next
/// refresh computes them all again. Returns whether it did.
#[instrument(skip_all)]
pub(crate) async fn forget_if_basis_changed(
    tx: &mut Transaction<'_, Postgres>,
    catalogue: &Catalogue,
) -> Result<bool, HubError> {
    let basis = basis_of(catalogue);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT fingerprint FROM deadline_clock_basis FOR UPDATE")
            .fetch_optional(&mut **tx)
            .await?;
    if stored.as_deref() == Some(basis.as_str()) {
        return Ok(false);
    }
    sqlx::query("DELETE FROM deadline_clocks")
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO deadline_clock_basis (fingerprint) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET fingerprint = excluded.fingerprint",
    )
    .bind(&basis)
    .execute(&mut **tx)
    .await?;
    Ok(stored.is_some())
}
