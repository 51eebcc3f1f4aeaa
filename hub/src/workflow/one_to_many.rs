//! 1:N exchanges (notifications, alerts). Recipients are resolved once, when
//! the exchange opens (decode), and frozen on the exchange. Until an action
//! that `broadcasts` succeeds, and the sender's national coordinator
//! validated it where its country's gate requires that, the exchange's
//! messages are *held*: stored, answered with a receipt, delivered to nobody.
//! On release every held message goes to every recipient in order (a
//! [`Replay`]); after it, each message reaches every party but its author. A
//! recipient that `disseminates` adds authorities of its own country, who
//! receive everything released so far.
//!
//! Cost follows recipient *endpoints*, not authorities: one outbox row (one
//! queue copy) per endpoint, naming that endpoint's recipient authorities.

use imi_schemas::catalogue::{Role, VALIDATION_STATE};
use imi_schemas::protocol::RejectionCode;
use uuid::Uuid;

use super::{DueFromField, ExchangeState, NewExchange, Planner, Refused, Replay, Transition};
use crate::inbound::{Inbound, OneToMany};
use crate::outgoing::{self, Copy};

/// What a 1:N message did to its exchange.
struct Stepped {
    exchange_id: Uuid,
    from: Option<String>,
    to: String,
    /// Who receives this message now (nobody while held).
    recipients: Vec<String>,
}

impl<'a> Planner<'a, '_> {
    /// Plans one message of a 1:N exchange; on success the message, its
    /// transition, its copies and its receipt are in the plan.
    pub(super) fn notification(
        &mut self,
        inbound: &'a Inbound,
        step: &OneToMany,
    ) -> Result<(), Refused> {
        let stepped = if inbound.step.opens {
            self.open_notification(inbound, step)
        } else {
            self.continue_notification(inbound, step)?
        };
        let message_type = inbound.message_type.to_string();
        let copy = Copy {
            message_id: inbound.message_id.as_uuid(),
            exchange_id: stepped.exchange_id,
            message_type: &message_type,
            sender: inbound.sender.as_str(),
            schema_version: inbound.schema_version as i32,
            traceparent: inbound.traceparent.as_deref(),
            raw: &inbound.raw,
        };
        let (rows, deliveries) =
            match outgoing::fan_out(&copy, &stepped.recipients, self.registry, "") {
                Ok(copies) => copies,
                Err(authority) => {
                    // This registry snapshot is older than the exchange: the
                    // batch is planned again on a fresh one (the plan, changed
                    // above, is void).
                    self.plan.stale = Some(authority);
                    return Ok(());
                }
            };
        let released = self
            .exchanges
            .get(&stepped.exchange_id)
            .is_some_and(|e| e.released);
        self.plan.outbox.extend(rows);
        self.plan.deliveries.extend(deliveries);
        // Dissemination copies are not news for subscribers; everything else
        // released is.
        if released && !step.disseminates {
            let procedure = inbound.message_type.procedure.as_str();
            self.plan
                .outbox
                .push(outgoing::broadcast(&copy, &step.area, procedure));
        }
        // Closing only if the step went where the action leads (not to
        // validation instead).
        if inbound.step.closes && stepped.to == inbound.step.to {
            self.plan.closed.push(stepped.exchange_id);
        }
        let transition = Transition {
            exchange_id: stepped.exchange_id,
            message_id: copy.message_id,
            action: inbound.message_type.action.to_string(),
            from: stepped.from,
            to: stepped.to,
        };
        self.accept(inbound, transition, stepped.recipients);
        Ok(())
    }

    /// Is the sender's country validating outgoing messages of this area?
    fn gated(&self, inbound: &Inbound, step: &OneToMany) -> bool {
        let country = inbound.sender.country().as_str().to_owned();
        step.can_be_validated && self.gates.contains(&(country, step.area.clone()))
    }

    /// The opening message: the exchange with its frozen recipients, released
    /// at once if the action broadcasts and no gate holds it.
    fn open_notification(&mut self, inbound: &Inbound, step: &OneToMany) -> Stepped {
        let exchange_id = inbound.message_id.opened_exchange().as_uuid();
        let frozen: Vec<String> = inbound.recipients.iter().map(|a| a.to_string()).collect();
        let (to, release) = match (step.broadcasts, self.gated(inbound, step)) {
            (true, true) => (VALIDATION_STATE.to_owned(), false),
            (true, false) => (inbound.step.to.clone(), true),
            (false, _) => (inbound.step.to.clone(), false),
        };
        self.open(NewExchange {
            id: exchange_id,
            opened_by: inbound.message_id.as_uuid(),
            state: ExchangeState {
                procedure: inbound.message_type.procedure.to_string(),
                state: to.clone(),
                requester: inbound.sender.to_string(),
                responder: String::new(),
                recipients: Some(frozen.clone()),
                released: release,
            },
            parent: None,
        });
        for d in &step.field_deadlines {
            let due = d.due_at;
            self.plan.field_deadlines.push(DueFromField {
                exchange_id,
                deadline: d.code.clone(),
                field_date: d.date,
                due_at: due,
            });
        }
        Stepped {
            exchange_id,
            from: None,
            to,
            recipients: if release { frozen } else { Vec::new() },
        }
    }

    /// A follow-up by the originator or a recipient.
    fn continue_notification(
        &mut self,
        inbound: &Inbound,
        step: &OneToMany,
    ) -> Result<Stepped, Refused> {
        let exchange_id = self.continued(inbound)?;
        let exchange = self.exchanges[&exchange_id].clone();
        let frozen = exchange.recipients.clone().unwrap_or_default();
        let sender = inbound.sender.as_str();
        let role = if sender == exchange.requester {
            Role::Requester
        } else if frozen.iter().any(|r| r == sender) {
            Role::Responder
        } else {
            return Err(self.refuse(
                inbound,
                RejectionCode::ActionNotAllowedForRole,
                format!("`{sender}` is neither the originator nor a recipient of exchange {exchange_id}"),
            ));
        };
        self.check_step(inbound, role, &exchange.state)?;
        let mut to = inbound.step.to.clone();
        let mut release = false;
        let recipients = if step.disseminates {
            self.disseminate(inbound, exchange_id, &exchange)?
        } else if !inbound.recipients.is_empty() {
            return Err(self.refuse(
                inbound,
                RejectionCode::InvalidRecipients,
                "a follow-up of a 1:N exchange goes to all its parties; leave recipients empty"
                    .into(),
            ));
        } else if step.broadcasts && !exchange.released {
            if self.gated(inbound, step) {
                to = VALIDATION_STATE.to_owned();
                Vec::new()
            } else {
                release = true;
                self.plan.replays.push(Replay {
                    exchange_id,
                    before: inbound.message_id.as_uuid(),
                    recipients: frozen.clone(),
                    tag: String::new(),
                    broadcast: Some((
                        step.area.clone(),
                        inbound.message_type.procedure.to_string(),
                    )),
                    skip_type: None,
                    outbox_pos: self.plan.outbox.len(),
                });
                frozen
            }
        } else if exchange.released {
            let mut parties = frozen;
            parties.push(exchange.requester.clone());
            parties.retain(|p| p != sender);
            parties
        } else {
            // Held: a draft (or one awaiting validation) reaches nobody yet.
            Vec::new()
        };
        let stored = self
            .exchanges
            .get_mut(&exchange_id)
            .expect("a continued exchange is known");
        let from = std::mem::replace(&mut stored.state, to.clone());
        stored.released |= release;
        self.record_change(exchange_id);
        Ok(Stepped {
            exchange_id,
            from: Some(from),
            to,
            recipients,
        })
    }

    /// A recipient adds authorities of its own country that are not yet
    /// recipients; they receive everything released so far, and the
    /// originator learns who was added. Returns who receives this message.
    fn disseminate(
        &mut self,
        inbound: &Inbound,
        exchange_id: Uuid,
        exchange: &ExchangeState,
    ) -> Result<Vec<String>, Refused> {
        let sender = inbound.sender.as_str();
        let frozen = exchange.recipients.clone().unwrap_or_default();
        let mut added: Vec<String> = inbound.recipients.iter().map(|a| a.to_string()).collect();
        added.sort();
        added.dedup();
        let fits = !added.is_empty()
            && added.iter().all(|a| {
                a.get(..2) == sender.get(..2) && *a != exchange.requester && !frozen.contains(a)
            });
        if !fits {
            let action = inbound.message_type.action.as_str();
            return Err(self.refuse(
                inbound,
                RejectionCode::InvalidRecipients,
                format!("`{action}` names authorities of `{sender}`'s own country that are not yet recipients"),
            ));
        }
        let mut all = frozen;
        all.extend(added.iter().cloned());
        if let Some(stored) = self.exchanges.get_mut(&exchange_id) {
            stored.recipients = Some(all.clone());
        }
        self.plan.recipient_changes.insert(exchange_id, all);
        let message_id = inbound.message_id.as_uuid();
        self.plan.replays.push(Replay {
            exchange_id,
            before: message_id,
            recipients: added.clone(),
            tag: format!("#{message_id}"),
            broadcast: None,
            // Earlier disseminations went to other newcomers only.
            skip_type: Some(inbound.message_type.to_string()),
            outbox_pos: self.plan.outbox.len(),
        });
        let mut to_them = added;
        to_them.push(exchange.requester.clone());
        Ok(to_them)
    }
}
