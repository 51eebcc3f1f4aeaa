//! 1:1 requests: the opening message opens an exchange between its sender
//! (the requester) and its one recipient (the responder); every follow-up is
//! taken by the role the catalogue names, from the states it names, and goes
//! to the other party. A forward or referral (`reassigns`) hands the
//! exchange to a new responder; a split (`splits`) opens a linked child
//! exchange with another authority; the requester is told either way.

use std::collections::BTreeMap;

use imi_schemas::catalogue::Role;
use imi_schemas::protocol::RejectionCode;
use uuid::Uuid;

use super::{ExchangeState, NewExchange, Planner, Refused, Transition};
use crate::inbound::Inbound;
use crate::outgoing::{self, Copy};

/// Where an accepted 1:1 message goes, and what it did.
struct Routed {
    /// The exchange the message belongs to (a split's child for a split).
    exchange_id: Uuid,
    from: Option<String>,
    to: String,
    recipients: Vec<String>,
    /// A split: the parent exchange, named in the copy's headers.
    parent: Option<Uuid>,
}

impl<'a> Planner<'a, '_> {
    /// Plans one message of a 1:1 exchange; on success the message, its
    /// transition(s), copies and receipt are in the plan.
    pub(super) fn request(&mut self, inbound: &'a Inbound) -> Result<(), Refused> {
        let routed = if inbound.step.opens {
            self.open_request(inbound)
        } else {
            self.continue_request(inbound)?
        };
        // One copy per endpoint queue, naming the authorities it serves.
        let mut by_endpoint: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &routed.recipients {
            let Some(authority) = self.registry.authority(r) else {
                // Authorities are never removed, so this snapshot is older
                // than the exchange (another hub registered `r` moments ago):
                // the whole plan is dropped and made again on a fresh one.
                self.plan.stale = Some(r.clone());
                return Ok(());
            };
            by_endpoint
                .entry(authority.endpoint.to_string())
                .or_default()
                .push(r.clone());
        }
        if inbound.step.closes {
            self.plan.closed.push(routed.exchange_id);
        }
        let message_type = inbound.message_type.to_string();
        let copy = Copy {
            message_id: inbound.message_id.as_uuid(),
            exchange_id: routed.exchange_id,
            message_type: &message_type,
            sender: inbound.sender.as_str(),
            schema_version: inbound.schema_version as i32,
            traceparent: inbound.traceparent.as_deref(),
            raw: &inbound.raw,
        };
        self.plan
            .outbox
            .extend(outgoing::request_copies(&copy, by_endpoint, routed.parent));
        let transition = Transition {
            exchange_id: routed.exchange_id,
            message_id: copy.message_id,
            action: inbound.message_type.action.to_string(),
            from: routed.from,
            to: routed.to,
        };
        self.accept(inbound, transition, routed.recipients);
        Ok(())
    }

    /// The opening message: a new exchange with its one recipient.
    fn open_request(&mut self, inbound: &Inbound) -> Routed {
        let exchange_id = inbound.message_id.opened_exchange().as_uuid();
        let responder = inbound.recipients[0].to_string();
        self.open(NewExchange {
            id: exchange_id,
            opened_by: inbound.message_id.as_uuid(),
            state: ExchangeState {
                procedure: inbound.message_type.procedure.to_string(),
                state: inbound.step.to.clone(),
                requester: inbound.sender.to_string(),
                responder: responder.clone(),
                recipients: None,
                released: true,
            },
            parent: None,
        });
        Routed {
            exchange_id,
            from: None,
            to: inbound.step.to.clone(),
            recipients: vec![responder],
            parent: None,
        }
    }

    /// A follow-up: taken by a party, in its role, from an allowed state.
    fn continue_request(&mut self, inbound: &Inbound) -> Result<Routed, Refused> {
        let exchange_id = self.continued(inbound)?;
        let exchange = self.exchanges[&exchange_id].clone();
        let sender = inbound.sender.as_str();
        let role = if sender == exchange.requester {
            Role::Requester
        } else if sender == exchange.responder {
            Role::Responder
        } else {
            return Err(self.refuse(
                inbound,
                RejectionCode::ActionNotAllowedForRole,
                format!("`{sender}` is not a party to exchange {exchange_id}"),
            ));
        };
        self.check_step(inbound, role, &exchange.state)?;
        if inbound.step.splits || inbound.step.reassigns {
            return self.hand_over(inbound, exchange_id, &exchange);
        }
        let counterpart = match role {
            Role::Requester => exchange.responder.clone(),
            Role::Responder => exchange.requester.clone(),
        };
        let named_other = match inbound.recipients.as_slice() {
            [] => false,
            [one] => one.as_str() != counterpart,
            _ => true,
        };
        if named_other {
            return Err(self.refuse(
                inbound,
                RejectionCode::InvalidRecipients,
                format!("a follow-up goes to the other party, `{counterpart}`; leave recipients empty or name it"),
            ));
        }
        let from = self.step_to(exchange_id, &inbound.step.to, None);
        Ok(Routed {
            exchange_id,
            from: Some(from),
            to: inbound.step.to.clone(),
            recipients: vec![counterpart],
            parent: None,
        })
    }

    /// A forward or referral hands the exchange to the message's one
    /// recipient; a split opens a child exchange between the requester and
    /// it. The recipient must not be a party already.
    fn hand_over(
        &mut self,
        inbound: &Inbound,
        exchange_id: Uuid,
        exchange: &ExchangeState,
    ) -> Result<Routed, Refused> {
        let target = match inbound.recipients.as_slice() {
            [one] if one.as_str() != exchange.responder && one.as_str() != exchange.requester => {
                one.to_string()
            }
            _ => {
                let action = inbound.message_type.action.as_str();
                return Err(self.refuse(
                    inbound,
                    RejectionCode::InvalidRecipients,
                    format!("`{action}` names exactly one authority, other than the parties"),
                ));
            }
        };
        let recipients = vec![target.clone(), exchange.requester.clone()];
        if !inbound.step.splits {
            let from = self.step_to(exchange_id, &inbound.step.to, Some(target));
            return Ok(Routed {
                exchange_id,
                from: Some(from),
                to: inbound.step.to.clone(),
                recipients,
                parent: None,
            });
        }
        // The parent's step is recorded on the parent; the message itself
        // opens (and belongs to) the child.
        let from = self.step_to(exchange_id, &inbound.step.to, None);
        let message_id = inbound.message_id.as_uuid();
        self.plan.transitions.push(Transition {
            exchange_id,
            message_id,
            action: inbound.message_type.action.to_string(),
            from: Some(from),
            to: inbound.step.to.clone(),
        });
        let child_id = inbound.message_id.opened_exchange().as_uuid();
        let opening = inbound.step.opening_state.clone();
        self.open(NewExchange {
            id: child_id,
            opened_by: message_id,
            state: ExchangeState {
                procedure: exchange.procedure.clone(),
                state: opening.clone(),
                requester: exchange.requester.clone(),
                responder: target,
                recipients: None,
                released: true,
            },
            parent: Some(exchange_id),
        });
        Ok(Routed {
            exchange_id: child_id,
            from: None,
            to: opening,
            recipients,
            parent: Some(exchange_id),
        })
    }

    /// Moves a stored or opened exchange to `to` (with a new responder, for
    /// a forward); returns the state it left.
    fn step_to(&mut self, exchange_id: Uuid, to: &str, responder: Option<String>) -> String {
        let exchange = self
            .exchanges
            .get_mut(&exchange_id)
            .expect("a continued exchange is known");
        if let Some(responder) = responder {
            exchange.responder = responder;
        }
        let from = std::mem::replace(&mut exchange.state, to.to_owned());
        self.record_change(exchange_id);
        from
    }
}
