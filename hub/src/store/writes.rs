//! A batch's inserts, sent to PostgreSQL as one statement.
//!
//! Each table's rows go in as arrays (`UNNEST`), and the tables' inserts are
//! joined as data-modifying CTEs of a single statement: one round trip for
//! the batch, message, exchange, transition, outbox and rejection rows
//! together, where one statement per table cost a round trip each (and on a
//! busy two-core machine each round trip costs a wake-up of PostgreSQL and of
//! the hub). PostgreSQL checks foreign keys at the end of the statement, so a
//! message and the exchange it opens can share it.

use chrono::{DateTime, Utc};
use std::fmt::Write as _;

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, PgConnection, Postgres, Type};
use uuid::Uuid;

use crate::inbound::Refusal;
use crate::outgoing::OutboxRow;
use crate::workflow::{Accepted, NewExchange, Plan, Transition};

/// Inserts collected for one statement.
#[derive(Default)]
pub(crate) struct Writes {
    ctes: Vec<String>,
    args: PgArguments,
    params: usize,
    /// Whether a `messages` part is in; the statement then returns how many
    /// messages it inserted.
    counts_messages: bool,
}

/// How a message insert treats an id that is already stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// The whole statement fails (unique violation): for a batch written
    /// without reading first, which is then planned again the careful way.
    Fail,
    /// The row is skipped and the count tells (inside a transaction that is
    /// rolled back when the count is short).
    Skip,
}

impl Writes {
    /// Binds one array and returns its placeholder (`$n`).
    fn bind<'q, T>(&mut self, value: T) -> String
    where
        T: Encode<'q, Postgres> + Type<Postgres> + 'q,
    {
        self.args
            .add(value)
            .expect("arrays of plain values always encode");
        self.params += 1;
        format!("${}", self.params)
    }

    fn push(&mut self, name: &str, sql: String) {
        self.ctes.push(format!("{name} AS ({sql})"));
    }

    /// The batch row and what the plan opens and records, as one statement.
    pub(crate) fn core(
        plan: &Plan<'_>,
        batch_id: Uuid,
        instance: &str,
        on_conflict: OnConflict,
    ) -> Writes {
        let mut writes = Writes::default();
        writes.batch(batch_id, instance);
        writes.exchanges(&plan.new_exchanges);
        writes.messages(batch_id, plan.now, &plan.messages, on_conflict);
        writes.transitions(&plan.transitions, None);
        writes
    }

    pub(crate) fn batch(&mut self, batch_id: Uuid, instance: &str) {
        let (id, instance) = (self.bind(batch_id), self.bind(instance.to_owned()));
        self.push(
            "b",
            format!("INSERT INTO batches (id, instance) VALUES ({id}, {instance})"),
        );
    }

    fn exchanges(&mut self, rows: &[NewExchange]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let procedures: Vec<&str> = rows.iter().map(|r| r.state.procedure.as_str()).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.state.as_str()).collect();
        let requesters: Vec<&str> = rows.iter().map(|r| r.state.requester.as_str()).collect();
        let responders: Vec<&str> = rows.iter().map(|r| r.state.responder.as_str()).collect();
        let opened_by: Vec<Uuid> = rows.iter().map(|r| r.opened_by).collect();
        let parents: Vec<Option<Uuid>> = rows.iter().map(|r| r.parent).collect();
        // Authority ids have no commas; arrays of arrays do not UNNEST.
        let recipients: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.state.recipients.as_ref().map(|v| v.join(",")))
            .collect();
        let released: Vec<bool> = rows.iter().map(|r| r.state.released).collect();
        let p = [
            self.bind(ids),
            self.bind(procedures),
            self.bind(states),
            self.bind(requesters),
            self.bind(responders),
            self.bind(opened_by),
            self.bind(parents),
            self.bind(recipients),
            self.bind(released),
        ];
        self.push(
            "e",
            format!(
                "INSERT INTO exchanges (id, procedure, state, requester, responder, opened_by, parent_id,
                                        recipients, released_at)
                 SELECT id, pr, st, rq, rs, ob, pa, string_to_array(rc, ','),
                        CASE WHEN rl AND rc IS NOT NULL THEN now() END
                 FROM UNNEST({}::uuid[], {}::text[], {}::text[], {}::text[], {}::text[], {}::uuid[],
                             {}::uuid[], {}::text[], {}::bool[]) AS u(id, pr, st, rq, rs, ob, pa, rc, rl)",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
            ),
        );
    }

    /// Messages with the exchange each belongs to and its resolved recipients.
    fn messages(
        &mut self,
        batch_id: Uuid,
        received_at: DateTime<Utc>,
        rows: &[Accepted<'_>],
        on_conflict: OnConflict,
    ) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = rows
            .iter()
            .map(|a| a.inbound.message_id.as_uuid())
            .collect();
        let exchanges: Vec<Uuid> = rows.iter().map(|a| a.exchange_id).collect();
        let types: Vec<String> = rows
            .iter()
            .map(|a| a.inbound.message_type.to_string())
            .collect();
        let versions: Vec<i32> = rows
            .iter()
            .map(|a| a.inbound.schema_version as i32)
            .collect();
        let senders: Vec<&str> = rows.iter().map(|a| a.inbound.sender.as_str()).collect();
        let endpoints: Vec<&str> = rows
            .iter()
            .map(|a| a.inbound.sender_endpoint.as_str())
            .collect();
        let recipients: Vec<String> = rows.iter().map(|a| a.recipients.join(",")).collect();
        let raws: Vec<&[u8]> = rows.iter().map(|a| a.inbound.stored()).collect();
        let facts: Vec<&serde_json::Value> = rows.iter().map(|a| &a.inbound.facts).collect();
        let digests: Vec<&[u8]> = rows.iter().map(|a| a.inbound.digest.as_slice()).collect();
        let traces: Vec<Option<&str>> = rows
            .iter()
            .map(|a| a.inbound.traceparent.as_deref())
            .collect();
        let p = [
            self.bind(ids),
            self.bind(exchanges),
            self.bind(types),
            self.bind(versions),
            self.bind(senders),
            self.bind(endpoints),
            self.bind(recipients),
            self.bind(raws),
            self.bind(digests),
            self.bind(traces),
            self.bind(batch_id),
            self.bind(received_at),
            self.bind(facts),
        ];
        let conflict = match on_conflict {
            OnConflict::Fail => "",
            OnConflict::Skip => "ON CONFLICT (id) DO NOTHING",
        };
        self.push(
            "m",
            format!(
                "INSERT INTO messages (id, exchange_id, message_type, schema_version, sender, sender_endpoint,
                                       recipients, raw, raw_sha256, traceparent, batch_id, received_at, facts)
                 SELECT id, ex, ty, ver, snd, ep, string_to_array(rc, ','), raw, dg, tp, {}, {}::timestamptz, fa
                 FROM UNNEST({}::uuid[], {}::uuid[], {}::text[], {}::int[], {}::text[], {}::text[],
                             {}::text[], {}::bytea[], {}::bytea[], {}::text[], {}::jsonb[])
                      AS u(id, ex, ty, ver, snd, ep, rc, raw, dg, tp, fa)
                 {conflict}
                 RETURNING id",
                p[10], p[11], p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[12]
            ),
        );
        self.counts_messages = true;
        self.subject_index(rows);
    }

    /// Who the messages are about (keyed hashes), beside the messages.
    fn subject_index(&mut self, rows: &[Accepted<'_>]) {
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut messages: Vec<Uuid> = Vec::new();
        let mut exchanges: Vec<Uuid> = Vec::new();
        for a in rows {
            for key in &a.inbound.subject_keys {
                keys.push(key);
                messages.push(a.inbound.message_id.as_uuid());
                exchanges.push(a.exchange_id);
            }
        }
        if keys.is_empty() {
            return;
        }
        let (k, m, e) = (self.bind(keys), self.bind(messages), self.bind(exchanges));
        self.push(
            "si",
            format!(
                "INSERT INTO subject_index (key, message_id, exchange_id)
                 SELECT * FROM UNNEST({k}::bytea[], {m}::uuid[], {e}::uuid[])
                 ON CONFLICT DO NOTHING"
            ),
        );
    }

    /// Transitions; `actor` names the account for a step a person took over
    /// HTTP (none for a message's step).
    pub(crate) fn transitions(&mut self, rows: &[Transition], actor: Option<&str>) {
        if rows.is_empty() {
            return;
        }
        let exchanges: Vec<Uuid> = rows.iter().map(|t| t.exchange_id).collect();
        let messages: Vec<Uuid> = rows.iter().map(|t| t.message_id).collect();
        let actions: Vec<&str> = rows.iter().map(|t| t.action.as_str()).collect();
        let froms: Vec<Option<&str>> = rows.iter().map(|t| t.from.as_deref()).collect();
        let tos: Vec<&str> = rows.iter().map(|t| t.to.as_str()).collect();
        let p = [
            self.bind(exchanges),
            self.bind(messages),
            self.bind(actions),
            self.bind(froms),
            self.bind(tos),
            self.bind(actor.map(str::to_owned)),
        ];
        self.push(
            "t",
            format!(
                "INSERT INTO transitions (exchange_id, message_id, action, from_state, to_state, actor)
                 SELECT *, {}::text FROM UNNEST({}::uuid[], {}::uuid[], {}::text[], {}::text[], {}::text[])",
                p[5], p[0], p[1], p[2], p[3], p[4]
            ),
        );
    }

    pub(crate) fn outbox(&mut self, batch_id: Uuid, rows: &[OutboxRow]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        let sources: Vec<&str> = rows.iter().map(|r| r.source_message_id.as_str()).collect();
        let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint.as_str()).collect();
        let recipients: Vec<String> = rows.iter().map(|r| r.recipients.join(",")).collect();
        let exchanges: Vec<Option<Uuid>> = rows.iter().map(|r| r.exchange_id).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.message_type.as_str()).collect();
        // Deliveries' headers are derived from the message when the relay
        // needs them (store::outbox), so only the hub's own messages store
        // theirs.
        let headers: Vec<Option<String>> = rows
            .iter()
            .map(|r| {
                (!r.kind.copies_a_message())
                    .then(|| serde_json::to_string(&r.headers).expect("headers serialize"))
            })
            .collect();
        // Deliveries and broadcasts take their body from messages.raw: not
        // stored twice (or 200 times).
        let bodies: Vec<Option<&[u8]>> = rows
            .iter()
            .map(|r| (!r.kind.copies_a_message()).then_some(r.body.as_slice()))
            .collect();
        let p = [
            self.bind(ids),
            self.bind(kinds),
            self.bind(sources),
            self.bind(endpoints),
            self.bind(recipients),
            self.bind(exchanges),
            self.bind(types),
            self.bind(headers),
            self.bind(bodies),
            self.bind(batch_id),
        ];
        self.push(
            "o",
            format!(
                "INSERT INTO outbox (id, batch_id, kind, source_message_id, endpoint_id, recipients,
                                     exchange_id, message_type, headers, body)
                 SELECT id, {}, kind, src, ep,
                        CASE WHEN rc = '' THEN '{{}}'::text[] ELSE string_to_array(rc, ',') END,
                        ex, ty, coalesce(hd::jsonb, '{{}}'), body
                 FROM UNNEST({}::uuid[], {}::text[], {}::text[], {}::text[], {}::text[], {}::uuid[],
                             {}::text[], {}::text[], {}::bytea[]) AS u(id, kind, src, ep, rc, ex, ty, hd, body)
                 ON CONFLICT (id) DO NOTHING",
                p[9], p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
            ),
        );
    }

    /// Refused messages, kept with their reasons for inspection; their
    /// bodies sealed with `keys` (`at_rest`).
    pub(crate) fn rejected(&mut self, rows: &[&Refusal], keys: &crate::at_rest::DataKeys) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<Option<&str>> = rows.iter().map(|r| r.message_id.as_deref()).collect();
        let users: Vec<Option<&str>> = rows.iter().map(|r| r.user_id.as_deref()).collect();
        let types: Vec<Option<&str>> = rows.iter().map(|r| r.message_type.as_deref()).collect();
        let codes: Vec<&str> = rows.iter().map(|r| r.rejection.code.as_str()).collect();
        let details: Vec<&str> = rows.iter().map(|r| r.rejection.detail.as_str()).collect();
        let errors: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(&r.rejection.errors).expect("errors serialize"))
            .collect();
        let bodies: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| match r.body.is_empty() {
                true => Vec::new(),
                false => keys.seal(&r.body).unwrap_or_else(|| r.body.clone()),
            })
            .collect();
        let sizes: Vec<i32> = rows
            .iter()
            .map(|r| r.body_size.min(i32::MAX as usize) as i32)
            .collect();
        let digests: Vec<&[u8]> = rows.iter().map(|r| r.digest.as_slice()).collect();
        let correlations: Vec<Option<&str>> =
            rows.iter().map(|r| r.correlation_id.as_deref()).collect();
        let headers: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(&r.headers).expect("headers serialize"))
            .collect();
        let p = [
            self.bind(ids),
            self.bind(users),
            self.bind(types),
            self.bind(codes),
            self.bind(details),
            self.bind(errors),
            self.bind(bodies),
            self.bind(sizes),
            self.bind(digests),
            self.bind(correlations),
            self.bind(headers),
        ];
        self.push(
            "r",
            format!(
                // Once per sender and message_id: a delivery processed
                // again (after a crash) finds its record; one refused again
                // after a re-drive reopens it with the new cause. A batch
                // may hold the same message twice: the first one counts.
                "INSERT INTO rejected_messages (message_id, user_id, message_type, code, detail, errors,
                                                body, body_size, body_sha256, correlation_id, headers)
                 SELECT DISTINCT ON (coalesce(id, 'n' || n), coalesce(usr, ''))
                        id, usr, ty, code, detail, errs::jsonb, body, size, dg, cor, hd::jsonb
                 FROM UNNEST({}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[],
                             {}::bytea[], {}::int[], {}::bytea[], {}::text[], {}::text[])
                      WITH ORDINALITY AS u(id, usr, ty, code, detail, errs, body, size, dg, cor, hd, n)
                 ORDER BY coalesce(id, 'n' || n), coalesce(usr, ''), n
                 ON CONFLICT (message_id, (coalesce(user_id, ''))) WHERE message_id IS NOT NULL
                 DO UPDATE SET code = EXCLUDED.code, detail = EXCLUDED.detail, errors = EXCLUDED.errors,
                               received_at = CASE WHEN rejected_messages.resolved_at IS NULL
                                                  THEN rejected_messages.received_at
                                                  ELSE EXCLUDED.received_at END,
                               resolved_at = NULL, resolution = NULL, resolved_by = NULL",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]
            ),
        );
    }

    /// Runs every part as one statement; returns how many messages it
    /// inserted (0 without a `messages` part).
    pub(crate) async fn execute(self, conn: &mut PgConnection) -> Result<usize, sqlx::Error> {
        if self.ctes.is_empty() {
            return Ok(0);
        }
        let mut sql = String::from("WITH ");
        sql.push_str(&self.ctes.join(",\n"));
        let count = if self.counts_messages {
            "(SELECT count(*) FROM m)"
        } else {
            "0::bigint"
        };
        let _ = write!(sql, "\nSELECT {count}");
        let inserted: i64 = sqlx::query_scalar_with(&sql, self.args)
            .fetch_one(conn)
            .await?;
        Ok(inserted as usize)
    }
}

/// Whether PostgreSQL refused the statement for a duplicate key.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
