//! The workflow engine: pure, no IO. It turns a batch of decoded messages
//! and what is stored of the exchanges they continue into a [`Plan`]: the
//! exchanges opened and changed, the transitions, the outbox rows (one
//! builder: `outgoing`), the 1:N delivery rows, the receipts and the
//! refusals. `store` reads the state before and writes the plan after; the
//! rules of the catalogue's workflows and of 1:N exchanges are all here, and
//! its unit tests (`tests.rs`) run without a database.
//!
//! Messages are planned in arrival order, so a batch may open an exchange
//! and continue it.

mod one_to_many;
mod one_to_one;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use imi_schemas::catalogue::Role;
use imi_schemas::protocol::{Receipt, RejectionCode};
use uuid::Uuid;

use crate::inbound::{Decoded, Inbound, Refusal};
use crate::outgoing::{self, DeliveryRow, OutboxRow, ReceiptsFor};
use crate::registry::Registry;

/// An exchange as the workflow sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExchangeState {
    pub(crate) procedure: String,
    pub(crate) state: String,
    pub(crate) requester: String,
    /// 1:1: the authority addressed; empty for 1:N.
    pub(crate) responder: String,
    /// 1:N: the frozen recipients.
    pub(crate) recipients: Option<Vec<String>>,
    /// 1:N: released to its recipients (1:1 exchanges always are).
    pub(crate) released: bool,
}

#[derive(Debug)]
pub(crate) struct NewExchange {
    pub(crate) id: Uuid,
    pub(crate) opened_by: Uuid,
    pub(crate) state: ExchangeState,
    /// Set for a child exchange opened by a split.
    pub(crate) parent: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) exchange_id: Uuid,
    pub(crate) message_id: Uuid,
    pub(crate) action: String,
    pub(crate) from: Option<String>,
    pub(crate) to: String,
}

/// A stored exchange's new state, responder and release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) state: String,
    pub(crate) responder: String,
    pub(crate) released: bool,
}

/// An accepted message with the exchange it belongs to and its recipients.
#[derive(Debug)]
pub(crate) struct Accepted<'a> {
    pub(crate) inbound: &'a Inbound,
    pub(crate) exchange_id: Uuid,
    pub(crate) recipients: Vec<String>,
}

/// A deadline counted from a date of an opening payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DueFromField {
    pub(crate) exchange_id: Uuid,
    pub(crate) deadline: String,
    pub(crate) field_date: NaiveDate,
    pub(crate) due_at: DateTime<Utc>,
}

/// Stored messages to send once the batch's rows are written: the held
/// messages of a 1:N exchange being released, or everything released so far
/// for authorities added by dissemination.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) exchange_id: Uuid,
    /// Replays the exchange's messages before this one.
    pub(crate) before: Uuid,
    pub(crate) recipients: Vec<String>,
    /// Distinguishes these copies' ids from earlier copies to the same
    /// endpoints (a dissemination's new authorities need a copy of their own).
    pub(crate) tag: String,
    /// Also publish each on `imi.alerts`: (area, procedure). A release, not a
    /// dissemination.
    pub(crate) broadcast: Option<(String, String)>,
    /// Messages of this type are not replayed.
    pub(crate) skip_type: Option<String>,
    /// Where in the batch's outbox the copies go: before the current message.
    pub(crate) outbox_pos: usize,
}

/// What is stored that the plan depends on.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// The exchanges the batch continues (locked by the store).
    pub(crate) exchanges: HashMap<Uuid, ExchangeState>,
    /// The batch's messages already stored, with their SHA-256.
    pub(crate) digests: HashMap<Uuid, Vec<u8>>,
    /// National validation gates switched on: (country, area).
    pub(crate) gates: HashSet<(String, String)>,
}

/// Why a plan may not be written now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replan {
    /// The registry snapshot does not know this authority yet.
    StaleRegistry(String),
    /// The workflow refused a message while earlier batches, which may
    /// change the verdict, were still committing.
    NeedsEarlier,
}

/// What the batch does, ready to be written.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// When the batch was accepted: each message's `received_at`, and the
    /// `accepted_at` of its receipt, first sent or sent again.
    pub(crate) now: DateTime<Utc>,
    pub(crate) new_exchanges: Vec<NewExchange>,
    pub(crate) changed: HashMap<Uuid, Change>,
    /// 1:N exchanges whose recipients grew (dissemination) → all of them.
    pub(crate) recipient_changes: HashMap<Uuid, Vec<String>>,
    pub(crate) messages: Vec<Accepted<'a>>,
    pub(crate) transitions: Vec<Transition>,
    pub(crate) outbox: Vec<OutboxRow>,
    /// 1:N: one row per recipient authority of each copy.
    pub(crate) deliveries: Vec<DeliveryRow>,
    /// 1:N: stored messages to send once this batch's rows are written.
    pub(crate) replays: Vec<Replay>,
    /// Exchanges formally closed by the batch (retention counts from now).
    pub(crate) closed: Vec<Uuid>,
    pub(crate) field_deadlines: Vec<DueFromField>,
    /// An authority this registry snapshot does not know yet: the plan is
    /// void and the batch is planned again on a reloaded registry.
    pub(crate) stale: Option<String>,
    /// Refused before planning (decode), kept with their reasons.
    pub(crate) decoded_refusals: Vec<&'a Refusal>,
    /// Refusals made by the workflow (owned, since they are built here).
    pub(crate) workflow_refusals: Vec<Refusal>,
    /// (sender endpoint, receipt) in arrival order.
    pub(crate) receipts: Vec<(String, Receipt)>,
    /// Messages of the batch already stored with the same content.
    pub(crate) duplicates: Vec<Uuid>,
}

impl<'a> Plan<'a> {
    /// Whether the plan may be written now: not if the registry snapshot was
    /// behind, nor if the workflow refused something while earlier batches
    /// are still committing.
    pub(crate) fn check(&mut self, earlier_in_flight: bool) -> Result<(), Replan> {
        if let Some(authority) = self.stale.take() {
            return Err(Replan::StaleRegistry(authority));
        }
        if earlier_in_flight && !self.workflow_refusals.is_empty() {
            return Err(Replan::NeedsEarlier);
        }
        Ok(())
    }

    /// Only writes: nothing stored is read or changed, so the plan can be
    /// written as one statement without a transaction.
    pub(crate) fn only_opens(&self) -> bool {
        self.changed.is_empty()
            && self.recipient_changes.is_empty()
            && self.closed.is_empty()
            && self.replays.is_empty()
            && self.field_deadlines.is_empty()
            && self.deliveries.is_empty()
            && self.duplicates.is_empty()
    }

    /// Every refusal of the batch, to be kept with its reasons.
    pub(crate) fn refusals(&self) -> Vec<&Refusal> {
        let mut all: Vec<&Refusal> = self.decoded_refusals.clone();
        all.extend(self.workflow_refusals.iter());
        all
    }

    /// The whole outbox: the rows so far, then the answers to workflow
    /// refusals, then one receipts row per sender endpoint (with
    /// `stored_receipts`, those of duplicates).
    pub(crate) fn finish_outbox(
        &mut self,
        stored_receipts: Vec<(String, Receipt)>,
    ) -> (Vec<OutboxRow>, Vec<ReceiptsFor>) {
        let mut outbox = std::mem::take(&mut self.outbox);
        outbox.extend(
            self.workflow_refusals
                .iter()
                .filter_map(outgoing::rejection),
        );
        let mut by_endpoint: BTreeMap<String, Vec<Receipt>> = BTreeMap::new();
        for (endpoint, receipt) in std::mem::take(&mut self.receipts)
            .into_iter()
            .chain(stored_receipts)
        {
            by_endpoint.entry(endpoint).or_default().push(receipt);
        }
        let mut held = Vec::with_capacity(by_endpoint.len());
        for (endpoint, receipts) in by_endpoint {
            let row = outgoing::receipts(endpoint.clone(), &receipts);
            held.push(ReceiptsFor {
                row_id: row.id,
                endpoint,
                receipts,
            });
            outbox.push(row);
        }
        (outbox, held)
    }
}

/// Applies the workflow to the batch in arrival order, in memory.
pub(crate) fn plan<'a>(
    items: &'a [Decoded],
    stored: Stored,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Plan<'a> {
    // To the microsecond, as PostgreSQL keeps it: a receipt rebuilt from
    // the stored message then says the same as the first one.
    let now = now.trunc_subsecs(6);
    let mut planner = Planner {
        plan: Plan {
            now,
            ..Plan::default()
        },
        exchanges: stored.exchanges,
        new_ids: HashSet::new(),
        registry,
        gates: &stored.gates,
        now,
    };
    let mut seen: HashMap<Uuid, [u8; 32]> = HashMap::new();
    for item in items {
        let inbound = match item {
            Decoded::Refused(r) => {
                planner.plan.outbox.extend(outgoing::rejection(r));
                planner.plan.decoded_refusals.push(r);
                continue;
            }
            // Applied by the store (they read and update delivery rows).
            Decoded::Acknowledgement(_) => continue,
            Decoded::Inbound(i) => i.as_ref(),
        };
        let id = inbound.message_id.as_uuid();
        let earlier = stored
            .digests
            .get(&id)
            .map(Vec::as_slice)
            .or(seen.get(&id).map(|d| d.as_slice()));
        if let Some(digest) = earlier {
            if digest == inbound.digest {
                planner.plan.duplicates.push(id);
            } else {
                planner.plan.workflow_refusals.push(inbound.refused(
                    RejectionCode::MessageIdReused,
                    format!(
                        "message_id {id} was already used for a message with different content"
                    ),
                    now,
                ));
            }
            continue;
        }
        let planned = match &inbound.step.one_to_many {
            Some(step) => planner.notification(inbound, step),
            None => planner.request(inbound),
        };
        match planned {
            Ok(()) if planner.plan.stale.is_some() => return planner.plan,
            Ok(()) => {
                seen.insert(id, inbound.digest);
            }
            Err(refusal) => planner.plan.workflow_refusals.push(*refusal),
        }
    }
    planner.plan
}

/// The state of planning one batch.
struct Planner<'a, 'r> {
    plan: Plan<'a>,
    /// Every exchange the batch has seen, as the batch has left it so far.
    exchanges: HashMap<Uuid, ExchangeState>,
    /// Exchanges this batch opens.
    new_ids: HashSet<Uuid>,
    registry: &'r Registry,
    gates: &'r HashSet<(String, String)>,
    now: DateTime<Utc>,
}

/// A refusal, boxed: planning returns it on the cold path only.
type Refused = Box<Refusal>;

impl<'a> Planner<'a, '_> {
    fn refuse(&self, inbound: &Inbound, code: RejectionCode, detail: String) -> Refused {
        Box::new(inbound.refused(code, detail, self.now))
    }

    /// Records an exchange the batch opens (by a message, or a split's child).
    fn open(&mut self, exchange: NewExchange) {
        self.exchanges.insert(exchange.id, exchange.state.clone());
        self.new_ids.insert(exchange.id);
        self.plan.new_exchanges.push(exchange);
    }

    /// Records an exchange's new state: on its row if this batch opens it,
    /// else as a change.
    fn record_change(&mut self, id: Uuid) {
        let Some(exchange) = self.exchanges.get(&id) else {
            return;
        };
        if self.new_ids.contains(&id) {
            if let Some(n) = self.plan.new_exchanges.iter_mut().find(|n| n.id == id) {
                n.state = exchange.clone();
            }
        } else {
            self.plan.changed.insert(
                id,
                Change {
                    state: exchange.state.clone(),
                    responder: exchange.responder.clone(),
                    released: exchange.released,
                },
            );
        }
    }

    /// The exchange a follow-up continues (locked by the store), or why not.
    fn continued(&self, inbound: &Inbound) -> Result<Uuid, Refused> {
        let procedure = inbound.message_type.procedure.as_str();
        let id = inbound
            .exchange
            .expect("decode guarantees a follow-up names its exchange")
            .as_uuid();
        match self.exchanges.get(&id) {
            Some(e) if e.procedure == procedure => Ok(id),
            _ => Err(self.refuse(
                inbound,
                RejectionCode::UnknownExchange,
                format!("no {procedure} exchange has id {id}"),
            )),
        }
    }

    /// May the sender, in `role`, take the message's action from `state`?
    fn check_step(&self, inbound: &Inbound, role: Role, state: &str) -> Result<(), Refused> {
        let action = inbound.message_type.action.as_str();
        if role != inbound.step.by {
            return Err(self.refuse(
                inbound,
                RejectionCode::ActionNotAllowedForRole,
                format!(
                    "`{action}` is taken by the {}, and `{}` is the {}",
                    inbound.step.by.as_str(),
                    inbound.sender,
                    role.as_str()
                ),
            ));
        }
        if !inbound.step.from.iter().any(|s| s == state) {
            return Err(self.refuse(
                inbound,
                RejectionCode::ActionNotAllowedInState,
                format!("`{action}` is not allowed in state `{state}`"),
            ));
        }
        Ok(())
    }

    /// Records an accepted message: its transition, its receipt and its row.
    fn accept(&mut self, inbound: &'a Inbound, transition: Transition, recipients: Vec<String>) {
        let exchange_id = transition.exchange_id;
        self.plan.receipts.push((
            inbound.sender_endpoint.to_string(),
            Receipt {
                message_id: transition.message_id,
                exchange_id,
                message_type: inbound.message_type.to_string(),
                state: transition.to.clone(),
                recipients: recipients.clone(),
                accepted_at: self.now,
            },
        ));
        self.plan.transitions.push(transition);
        self.plan.messages.push(Accepted {
            inbound,
            exchange_id,
            recipients,
        });
    }
}
