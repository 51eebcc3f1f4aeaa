//! Deadline tracking: the catalogue declares, per procedure, deadlines that run
//! while an exchange is in some states, from an event, for a period of days,
//! working days, weeks or months (e.g. answer within 25 working days of the
//! request's receipt); `deadline_clocks` computes each exchange's clock.
//! A checker, run periodically by every hub instance, sends a reminder to the
//! authority expected to act one day before a deadline and an overdue notice
//! when it passes, and records both. The record's primary key makes every
//! notice fire once, whatever the number of hub instances, and a restarted hub
//! fires what came due while it was down. Coordinators see overdue exchanges
//! of their country through `GET /api/v1/overdue`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use imi_schemas::catalogue::{Deadline, DeadlineRuns, Procedure, ProcedureKind, Role};
use imi_schemas::protocol::DeadlineNotice;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::catalogue::SharedCatalogue;
use crate::clock::Clock;
use crate::deadline_clocks;
use crate::dispatch::Sender;
use crate::error::HubError;
use crate::outgoing;
use crate::registry::SharedRegistry;
use crate::store;

/// A reminder goes out this long before the deadline.
const REMIND_BEFORE_SECS: f64 = 24.0 * 3600.0;

/// Checks deadlines; cheap to clone.
#[derive(Clone)]
pub struct DeadlineChecker {
    pub(crate) sender: Sender,
    pub(crate) catalogue: SharedCatalogue,
    pub(crate) registry: SharedRegistry,
    pub(crate) clock: Arc<dyn Clock>,
}

/// An overdue or inactive request its expected actor's coordinators are
/// told of.
struct Escalation {
    exchange_id: Uuid,
    procedure: String,
    kind: &'static str,
    due_at: DateTime<Utc>,
    authority: String,
}

/// A request with no step for this long, in a state where someone should
/// act, is "inactive": its responsible authority's coordinators are told.
const INACTIVE_AFTER_DAYS: i32 = 30;

/// A reminder or overdue notice just recorded.
#[derive(sqlx::FromRow)]
struct FiredDeadline {
    exchange_id: Uuid,
    kind: String,
    due_at: DateTime<Utc>,
    authority: String,
}

/// An inactivity spell just recorded.
#[derive(sqlx::FromRow)]
struct FiredInactivity {
    exchange_id: Uuid,
    due_at: DateTime<Utc>,
    authority: String,
}

/// Who is expected to act in `state`: the responder if any action it may
/// take starts there, else the requester.
/// Who must meet a deadline: whoever is expected to act in the first state
/// it runs in (the responder of a request from `sent` on, also while the
/// request is referred or accepted). One role per deadline, so its notices
/// and its calendar do not change with the state.
pub(crate) fn acting_role(procedure: &Procedure, deadline: &Deadline) -> Role {
    match &deadline.runs {
        DeadlineRuns::InStates { states, .. } => states
            .first()
            .map_or(Role::Requester, |s| responsible(procedure, s)),
        DeadlineRuns::FromField(_) => Role::Requester,
    }
}

pub(crate) fn responsible(procedure: &Procedure, state: &str) -> Role {
    // A 1:N exchange has no single responder: its originator acts.
    if procedure.kind == ProcedureKind::Notification {
        return Role::Requester;
    }
    let responder_acts = procedure
        .actions()
        .any(|a| a.by == Role::Responder && a.allowed_from(state));
    if responder_acts {
        Role::Responder
    } else {
        Role::Requester
    }
}

impl DeadlineChecker {
    /// One pass: fires every reminder and overdue notice due by now. Returns
    /// how many fired (in this instance).
    #[instrument(skip_all)]
    pub async fn check_once(&self) -> Result<usize, HubError> {
        let now = self.clock.now();
        let catalogue = self.catalogue.current();
        let pool = &self.sender.pool;
        // The clocks first, each deadline in a short transaction of its own
        // (no lock on an exchange is held while others are computed).
        let mut tx = pool.begin().await?;
        if deadline_clocks::forget_if_basis_changed(&mut tx, &catalogue).await? {
            info!("The catalogue's deadlines or calendars changed: every clock is computed again.");
        }
        tx.commit().await?;
        for p in catalogue.procedures() {
            for d in &p.deadlines {
                let mut tx = pool.begin().await?;
                deadline_clocks::refresh(&mut tx, &catalogue, p, d, acting_role(p, d)).await?;
                tx.commit().await?;
            }
        }
        let mut tx = pool.begin().await?;
        let mut notices: Vec<DeadlineNotice> = Vec::new();
        for p in catalogue.procedures() {
            for d in &p.deadlines {
                // Deadlines counted from a payload date (e.g. an alert due 3
                // days after the decision) are checked when the message
                // arrives, not here.
                let DeadlineRuns::InStates { states, .. } = &d.runs else {
                    continue;
                };
                let responder = acting_role(p, d) == Role::Responder;
                for state in states {
                    let rows: Vec<FiredDeadline> = sqlx::query_as(
                        "INSERT INTO deadline_events (exchange_id, deadline, kind, due_at, authority, fired_at, consequence)
                         SELECT e.id, $3,
                                CASE WHEN c.due_at <= $4 THEN 'overdue' ELSE 'reminder' END,
                                c.due_at,
                                CASE WHEN $5 THEN e.responder ELSE e.requester END,
                                $4, CASE WHEN c.due_at <= $4 THEN $7 END
                         FROM deadline_clocks c JOIN exchanges e ON e.id = c.exchange_id
                         WHERE c.deadline = $3 AND c.due_at IS NOT NULL
                           AND c.due_at <= $4 + make_interval(secs => $6)
                           AND e.procedure = $1 AND e.state = $2 AND c.computed_for = e.updated_at
                         ON CONFLICT DO NOTHING
                         RETURNING exchange_id, kind, due_at, authority",
                    )
                    .bind(p.code.as_str())
                    .bind(state)
                    .bind(&d.code)
                    .bind(now)
                    .bind(responder)
                    .bind(REMIND_BEFORE_SECS)
                    .bind(d.consequence.as_deref())
                    .fetch_all(&mut *tx)
                    .await?;
                    notices.extend(rows.into_iter().map(|r| {
                        DeadlineNotice {
                            consequence: (r.kind == "overdue")
                                .then(|| d.consequence.clone())
                                .flatten(),
                            exchange_id: r.exchange_id,
                            procedure: p.code.to_string(),
                            deadline: d.code.clone(),
                            kind: r.kind,
                            due_at: r.due_at,
                            authority: r.authority,
                        }
                    }));
                }
            }
        }
        // Inactivity: a request waiting in a state someone must act in,
        // with no step for INACTIVE_AFTER_DAYS (recorded once per such spell).
        let mut escalations: Vec<Escalation> = notices
            .iter()
            .filter(|n| n.kind == "overdue")
            .map(|n| Escalation {
                exchange_id: n.exchange_id,
                procedure: n.procedure.clone(),
                kind: "overdue",
                due_at: n.due_at,
                authority: n.authority.clone(),
            })
            .collect();
        for p in catalogue
            .procedures()
            .filter(|p| p.kind == ProcedureKind::Request)
        {
            let waiting: Vec<&str> = p
                .states
                .iter()
                .filter(|s| !p.closes_in(s) && p.actions().any(|a| a.allowed_from(s)))
                .map(String::as_str)
                .collect();
            for state in waiting {
                let responder = responsible(p, state) == Role::Responder;
                let rows: Vec<FiredInactivity> = sqlx::query_as(
                    "INSERT INTO deadline_events (exchange_id, deadline, kind, due_at, authority, fired_at)
                     SELECT e.id, 'inactivity', 'inactive', e.updated_at + make_interval(days => $3),
                            CASE WHEN $4 THEN e.responder ELSE e.requester END, $5
                     FROM exchanges e
                     WHERE e.procedure = $1 AND e.state = $2
                       AND e.updated_at + make_interval(days => $3) <= $5
                     ON CONFLICT DO NOTHING
                     RETURNING exchange_id, due_at, authority",
                )
                .bind(p.code.as_str())
                .bind(state)
                .bind(INACTIVE_AFTER_DAYS)
                .bind(responder)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                escalations.extend(rows.into_iter().map(|r| Escalation {
                    exchange_id: r.exchange_id,
                    procedure: p.code.to_string(),
                    kind: "inactive",
                    due_at: r.due_at,
                    authority: r.authority,
                }));
            }
        }
        // The coordinators of the authority expected to act are told of
        // every overdue and inactive request (their inbox in the API).
        let procedure_area = |code: &str| {
            catalogue
                .procedures()
                .find(|p| p.code.as_str() == code)
                .map(|p| p.area.to_string())
                .unwrap_or_default()
        };
        let mut escalated = 0;
        for Escalation {
            exchange_id: exchange,
            procedure,
            kind,
            due_at,
            authority,
        } in escalations
        {
            sqlx::query(
                "INSERT INTO coordinator_notices (country, area, region, kind, exchange_id, procedure, state,
                                                  authority, due_at, created_at)
                 SELECT left($5, 2), $1, a.region, $2, $3, $4, e.state, $5, $6, $7
                 FROM exchanges e LEFT JOIN authorities a ON a.id = $5
                 WHERE e.id = $3",
            )
            .bind(procedure_area(&procedure))
            .bind(kind)
            .bind(exchange)
            .bind(&procedure)
            .bind(&authority)
            .bind(due_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            escalated += 1;
        }
        if escalated > 0 {
            info!(
                escalated,
                "Coordinators notified of overdue or inactive requests."
            );
        }
        if notices.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        // The notices go out through the outbox, so a crash after this
        // commit still delivers them (the relay).
        let registry = self.registry.current();
        let mut rows = Vec::with_capacity(notices.len());
        for n in &notices {
            let mut told = vec![n.authority.clone()];
            // A missed deadline with a legal consequence (e.g. tacit
            // recognition) is announced to the other party too.
            if n.consequence.is_some() {
                let parties: Option<(String, String)> =
                    sqlx::query_as("SELECT requester, responder FROM exchanges WHERE id = $1")
                        .bind(n.exchange_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((requester, responder)) = parties {
                    told.extend(
                        [requester, responder]
                            .into_iter()
                            .filter(|a| !a.is_empty() && *a != n.authority),
                    );
                }
            }
            for to in told {
                let Some(authority) = registry.authority(&to) else {
                    warn!(authority = %to, "Deadline notice for an unregistered authority; recorded only.");
                    continue;
                };
                rows.push(outgoing::deadline_notice(
                    n,
                    &to,
                    authority.endpoint.to_string(),
                ));
            }
        }
        let batch_id = store::write_own(&mut tx, &self.sender.instance, &rows).await?;
        tx.commit().await?;
        self.sender.publish::<HubError>(batch_id, rows).await?;
        info!(fired = notices.len(), "Deadline notices sent.");
        Ok(notices.len())
    }
}
