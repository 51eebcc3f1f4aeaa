//! The workflow engine, rule by rule, with no database: each test decodes
//! messages as an adapter would publish them (the shipped catalogue, a small
//! registry), gives the engine what the store would have read, and checks
//! the plan.

use std::collections::HashMap;

use chrono::NaiveDate;
use imi_schemas::catalogue::VALIDATION_STATE;
use imi_schemas::protocol::{
    RejectionCode as Code, HEADER_ACKNOWLEDGEMENT, HEADER_PARENT_EXCHANGE, HEADER_RECIPIENTS,
    HEADER_SENDER,
};
use uuid::Uuid;

use super::{plan, ExchangeState, Plan, Replan, Stored};
use crate::inbound::Decoded;
use crate::outgoing::OutboxKind;
use crate::registry::Registry;
use crate::testing::{registry, Published, NOW};

/// Decodes `messages` and plans them as one batch on `stored`.
fn planned<'a>(items: &'a [Decoded], stored: Stored, registry: &Registry) -> Plan<'a> {
    plan(items, stored, registry, NOW())
}

fn decoded(messages: &[&Published]) -> Vec<Decoded> {
    let registry = registry();
    messages.iter().map(|m| m.decode(&registry)).collect()
}

/// A stored 1:1 exchange between FI-VALVIRA (requester) and DE-AEKNO.
fn request_in(state: &str) -> ExchangeState {
    ExchangeState {
        procedure: "pq-information-request".into(),
        state: state.into(),
        requester: "FI-VALVIRA".into(),
        responder: "DE-AEKNO".into(),
        recipients: None,
        released: true,
    }
}

/// A stored pq-alert by DE-AEKNO to AT-KAMMER and FI-VALVIRA.
fn alert_in(state: &str, released: bool) -> ExchangeState {
    ExchangeState {
        procedure: "pq-alert".into(),
        state: state.into(),
        requester: "DE-AEKNO".into(),
        responder: String::new(),
        recipients: Some(vec!["AT-KAMMER".into(), "FI-VALVIRA".into()]),
        released,
    }
}

fn stored(exchange: Uuid, state: ExchangeState) -> Stored {
    Stored {
        exchanges: HashMap::from([(exchange, state)]),
        ..Stored::default()
    }
}

fn refusal_codes(plan: &Plan<'_>) -> Vec<Code> {
    plan.workflow_refusals
        .iter()
        .map(|r| r.rejection.code)
        .collect()
}

fn refused_with(plan: &Plan<'_>, code: Code) {
    assert_eq!(refusal_codes(plan), [code]);
    assert!(plan.messages.is_empty() && plan.transitions.is_empty());
    assert!(plan.changed.is_empty() && plan.outbox.is_empty());
}

/// The endpoints the plan's deliveries go to, in outbox order.
fn delivered_to<'p>(plan: &'p Plan<'_>) -> Vec<&'p str> {
    plan.outbox
        .iter()
        .filter(|r| r.kind == OutboxKind::Delivery)
        .map(|r| r.endpoint.as_str())
        .collect()
}

fn follow_up(user: &str, action: &str, sender: &str, recipients: &[&str], on: Uuid) -> Published {
    let message_type = format!("pq-information-request.{action}");
    Published::new(user, &message_type, sender, recipients).on(on)
}

// ---- 1:1 requests ----

#[test]
fn an_opening_request_opens_an_exchange_with_its_recipient() {
    let send = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["DE-AEKNO"],
    );
    let items = decoded(&[&send]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    let opened = &plan.new_exchanges[0];
    assert_eq!(opened.id, send.opened());
    assert_eq!(opened.state.state, "sent");
    assert_eq!(opened.state.requester, "FI-VALVIRA");
    assert_eq!(opened.state.responder, "DE-AEKNO");
    assert_eq!(plan.transitions[0].from, None);
    assert_eq!(plan.transitions[0].to, "sent");
    // One copy, under the sender's own message id, for the recipient.
    let copy = &plan.outbox[0];
    assert_eq!(
        (copy.id, copy.endpoint.as_str()),
        (send.message_id(), "de-gw")
    );
    assert_eq!(copy.headers[HEADER_SENDER], "FI-VALVIRA");
    assert_eq!(copy.headers[HEADER_RECIPIENTS], "DE-AEKNO");
    assert!(!copy.headers.contains_key(HEADER_ACKNOWLEDGEMENT));
    let (endpoint, receipt) = &plan.receipts[0];
    assert_eq!(
        (endpoint.as_str(), receipt.state.as_str()),
        ("fi-gw", "sent")
    );
    assert!(plan.only_opens(), "a batch of openings needs no reads");
}

#[test]
fn a_follow_up_by_the_right_role_from_an_allowed_state_moves_the_exchange() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    assert!(
        refusal_codes(&plan).is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    let t = &plan.transitions[0];
    assert_eq!(
        (t.from.as_deref(), t.to.as_str()),
        (Some("sent"), "accepted")
    );
    assert_eq!(plan.changed[&exchange].state, "accepted");
    // It goes to the other party.
    assert_eq!(delivered_to(&plan), ["fi-gw"]);
    assert!(!plan.only_opens());
}

#[test]
fn a_follow_up_by_the_wrong_role_is_refused() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("fi-gw", "accept", "FI-VALVIRA", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    refused_with(&plan, Code::ActionNotAllowedForRole);
}

#[test]
fn a_follow_up_from_a_state_the_action_does_not_leave_is_refused() {
    let exchange = Uuid::now_v7();
    let close = follow_up("fi-gw", "close", "FI-VALVIRA", &[], exchange);
    let items = decoded(&[&close]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    refused_with(&plan, Code::ActionNotAllowedInState);
}

#[test]
fn a_follow_up_by_someone_not_a_party_is_refused() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("at-gw", "accept", "AT-KAMMER", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    refused_with(&plan, Code::ActionNotAllowedForRole);
}

#[test]
fn a_follow_up_of_an_unknown_exchange_or_another_procedure_is_refused() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    refused_with(
        &planned(&items, Stored::default(), &registry),
        Code::UnknownExchange,
    );
    let other = ExchangeState {
        procedure: "solvit-case-intake".into(),
        ..request_in("sent")
    };
    refused_with(
        &planned(&items, stored(exchange, other), &registry),
        Code::UnknownExchange,
    );
}

#[test]
fn a_follow_up_goes_to_the_other_party_only() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &["AT-KAMMER"], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    refused_with(&plan, Code::InvalidRecipients);
    // Naming the other party is fine.
    let named = follow_up("de-gw", "accept", "DE-AEKNO", &["FI-VALVIRA"], exchange);
    let items = decoded(&[&named]);
    let plan = planned(&items, stored(exchange, request_in("sent")), &registry);
    assert!(plan.workflow_refusals.is_empty());
}

#[test]
fn a_forward_hands_the_exchange_to_its_recipient_and_tells_the_requester() {
    let exchange = Uuid::now_v7();
    let forward = follow_up("de-gw", "forward", "DE-AEKNO", &["AT-KAMMER"], exchange);
    let items = decoded(&[&forward]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("accepted")), &registry);
    assert!(
        plan.workflow_refusals.is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    let change = &plan.changed[&exchange];
    assert_eq!(
        (change.state.as_str(), change.responder.as_str()),
        ("sent", "AT-KAMMER")
    );
    assert_eq!(delivered_to(&plan), ["at-gw", "fi-gw"]);
    // Two endpoints: each copy has an id of its own.
    assert!(plan.outbox.iter().all(|r| r.id != forward.message_id()));
    assert_eq!(plan.messages[0].recipients, ["AT-KAMMER", "FI-VALVIRA"]);
}

#[test]
fn a_forward_to_a_party_is_refused() {
    let exchange = Uuid::now_v7();
    let forward = follow_up("de-gw", "forward", "DE-AEKNO", &["FI-VALVIRA"], exchange);
    let items = decoded(&[&forward]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("accepted")), &registry);
    refused_with(&plan, Code::InvalidRecipients);
}

#[test]
fn a_split_opens_a_linked_child_exchange_and_the_parent_goes_on() {
    let exchange = Uuid::now_v7();
    let split = follow_up("de-gw", "split", "DE-AEKNO", &["AT-KAMMER"], exchange);
    let items = decoded(&[&split]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("accepted")), &registry);
    assert!(
        plan.workflow_refusals.is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    let child = &plan.new_exchanges[0];
    assert_eq!(child.id, split.opened());
    assert_eq!(child.parent, Some(exchange));
    assert_eq!(child.state.responder, "AT-KAMMER");
    assert_eq!(child.state.requester, "FI-VALVIRA");
    assert_eq!(child.state.state, "sent", "where requests start");
    // The parent's step, then the child's opening, both by the same message.
    let steps: Vec<(Uuid, Option<&str>, &str)> = plan
        .transitions
        .iter()
        .map(|t| (t.exchange_id, t.from.as_deref(), t.to.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (exchange, Some("accepted"), "accepted"),
            (child.id, None, "sent")
        ]
    );
    assert_eq!(plan.messages[0].exchange_id, child.id);
    let parent = exchange.to_string();
    assert!(plan
        .outbox
        .iter()
        .all(|r| r.headers.get(HEADER_PARENT_EXCHANGE) == Some(&parent)));
}

#[test]
fn a_closing_action_starts_retention() {
    let exchange = Uuid::now_v7();
    let close = follow_up("fi-gw", "close", "FI-VALVIRA", &[], exchange);
    let items = decoded(&[&close]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, request_in("answered")), &registry);
    assert_eq!(plan.closed, [exchange]);
}

#[test]
fn a_batch_may_open_an_exchange_and_continue_it_in_arrival_order() {
    let send = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["DE-AEKNO"],
    );
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &[], send.opened());
    let items = decoded(&[&send, &accept]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    assert!(
        plan.workflow_refusals.is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    // The new exchange's row carries its latest state; nothing to update.
    assert_eq!(plan.new_exchanges[0].state.state, "accepted");
    assert!(plan.changed.is_empty());
    // In the other order the follow-up finds nothing.
    let items = decoded(&[&accept, &send]);
    let plan = planned(&items, Stored::default(), &registry);
    assert_eq!(refusal_codes(&plan), [Code::UnknownExchange]);
}

#[test]
fn the_same_message_twice_is_a_duplicate_and_a_reused_id_is_refused() {
    let send = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["DE-AEKNO"],
    );
    let items = decoded(&[&send, &send]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.duplicates, [send.message_id()]);
    // Stored already: a duplicate too.
    let Decoded::Inbound(inbound) = &items[0] else {
        panic!("refused");
    };
    let stored = Stored {
        digests: HashMap::from([(send.message_id(), inbound.digest.to_vec())]),
        ..Stored::default()
    };
    let plan = planned(&items[..1], stored, &registry);
    assert_eq!((plan.messages.len(), plan.duplicates.len()), (0, 1));
    // The same id with other content is refused.
    let mut other = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["AT-KAMMER"],
    );
    other.properties.message_id = send.properties.message_id.clone();
    let items = decoded(&[&send, &other]);
    let plan = planned(&items, Stored::default(), &registry);
    assert_eq!(refusal_codes(&plan), [Code::MessageIdReused]);
}

#[test]
fn an_authority_the_registry_snapshot_does_not_know_voids_the_plan() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let state = ExchangeState {
        requester: "SE-NEWCOMER".into(),
        ..request_in("sent")
    };
    let mut plan = planned(&items, stored(exchange, state), &registry);
    assert_eq!(
        plan.check(false),
        Err(Replan::StaleRegistry("SE-NEWCOMER".into()))
    );
}

#[test]
fn a_workflow_refusal_waits_for_earlier_batches() {
    let exchange = Uuid::now_v7();
    let accept = follow_up("de-gw", "accept", "DE-AEKNO", &[], exchange);
    let items = decoded(&[&accept]);
    let registry = registry();
    let mut plan = planned(&items, Stored::default(), &registry);
    assert_eq!(plan.check(true), Err(Replan::NeedsEarlier));
    assert_eq!(plan.check(false), Ok(()));
}

#[test]
fn refusals_are_answered_and_receipts_grouped_per_sender() {
    let a = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["DE-AEKNO"],
    );
    let b = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-OTHER",
        &["AT-KAMMER"],
    );
    let bad = Published::new(
        "fi-gw",
        "pq-information-request.send",
        "FI-VALVIRA",
        &["DE-NOBODY"],
    );
    let items = decoded(&[&a, &bad, &b]);
    let registry = registry();
    let mut plan = planned(&items, Stored::default(), &registry);
    let (outbox, receipts) = plan.finish_outbox(Vec::new());
    let kinds: Vec<OutboxKind> = outbox.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            OutboxKind::Delivery,
            OutboxKind::Rejection,
            OutboxKind::Delivery,
            OutboxKind::Receipts
        ]
    );
    assert_eq!(
        receipts.len(),
        1,
        "one receipts message per sender endpoint"
    );
    assert_eq!(receipts[0].receipts.len(), 2);
    assert_eq!(plan.refusals().len(), 1);
}

// ---- 1:N notifications ----

#[test]
fn a_broadcast_opening_is_released_to_every_recipient_one_copy_per_endpoint() {
    let send = Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &[]);
    let items = decoded(&[&send]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    let opened = &plan.new_exchanges[0];
    assert!(opened.state.released);
    assert_eq!(opened.state.state, "sent");
    // FI-VALVIRA and FI-OTHER share fi-gw: one copy naming both.
    assert_eq!(delivered_to(&plan), ["at-gw", "fi-gw", "se-gw"]);
    let fi = plan.outbox.iter().find(|r| r.endpoint == "fi-gw").unwrap();
    assert_eq!(fi.headers[HEADER_RECIPIENTS], "FI-OTHER,FI-VALVIRA");
    assert_eq!(fi.headers[HEADER_ACKNOWLEDGEMENT], "requested");
    assert_eq!(plan.deliveries.len(), 4, "one delivery row per authority");
    let broadcast = plan
        .outbox
        .iter()
        .find(|r| r.kind == OutboxKind::Broadcast)
        .expect("a copy for subscribers");
    assert_eq!(broadcast.endpoint, "pq.pq-alert.DE");
    assert!(!broadcast.headers.contains_key(HEADER_RECIPIENTS));
}

#[test]
fn a_draft_is_held_until_submitted() {
    let draft = Published::new("de-gw", "pq-alert.draft", "DE-AEKNO", &[]);
    let items = decoded(&[&draft]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    assert!(!plan.new_exchanges[0].state.released);
    assert!(plan.outbox.is_empty() && plan.deliveries.is_empty());
    assert_eq!(plan.receipts[0].1.recipients, Vec::<String>::new());
}

#[test]
fn submitting_a_draft_releases_the_held_messages_first() {
    let exchange = Uuid::now_v7();
    let submit = Published::new("de-gw", "pq-alert.submit", "DE-AEKNO", &[]).on(exchange);
    let items = decoded(&[&submit]);
    let registry = registry();
    let plan = planned(
        &items,
        stored(exchange, alert_in("draft", false)),
        &registry,
    );
    assert!(plan.workflow_refusals.is_empty());
    let replay = &plan.replays[0];
    assert_eq!(replay.before, submit.message_id());
    assert_eq!(
        replay.outbox_pos, 0,
        "held messages go before the submission"
    );
    assert!(replay.broadcast.is_some());
    assert!(plan.changed[&exchange].released);
    assert_eq!(delivered_to(&plan), ["at-gw", "fi-gw"]);
}

#[test]
fn a_gated_country_sends_alerts_to_validation_first() {
    let send = Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &[]);
    let items = decoded(&[&send]);
    let registry = registry();
    let gated = Stored {
        gates: [("DE".to_owned(), "pq".to_owned())].into(),
        ..Stored::default()
    };
    let plan = planned(&items, gated, &registry);
    assert_eq!(plan.new_exchanges[0].state.state, VALIDATION_STATE);
    assert!(!plan.new_exchanges[0].state.released);
    assert!(plan.outbox.is_empty());
    // The gate of another country or area holds nothing.
    let elsewhere = Stored {
        gates: [("DE".to_owned(), "services".to_owned())].into(),
        ..Stored::default()
    };
    let plan = planned(&items, elsewhere, &registry);
    assert_eq!(plan.new_exchanges[0].state.state, "sent");
    // A submission while gated waits too.
    let exchange = Uuid::now_v7();
    let submit = Published::new("de-gw", "pq-alert.submit", "DE-AEKNO", &[]).on(exchange);
    let items = decoded(&[&submit]);
    let mut state = stored(exchange, alert_in("draft", false));
    state.gates = [("DE".to_owned(), "pq".to_owned())].into();
    let plan = planned(&items, state, &registry);
    assert_eq!(plan.changed[&exchange].state, VALIDATION_STATE);
    assert!(plan.replays.is_empty());
}

#[test]
fn a_follow_up_of_a_released_alert_reaches_every_party_but_its_author() {
    let exchange = Uuid::now_v7();
    let comment = Published::new("at-gw", "pq-alert.comment", "AT-KAMMER", &[]).on(exchange);
    let items = decoded(&[&comment]);
    let registry = registry();
    let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
    assert!(
        plan.workflow_refusals.is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    assert_eq!(plan.messages[0].recipients, ["FI-VALVIRA", "DE-AEKNO"]);
    // On a held exchange the same step reaches nobody.
    let withdraw = Published::new("de-gw", "pq-alert.withdraw", "DE-AEKNO", &[]).on(exchange);
    let items = decoded(&[&withdraw]);
    let plan = planned(
        &items,
        stored(exchange, alert_in("draft", false)),
        &registry,
    );
    assert!(plan.messages[0].recipients.is_empty());
}

#[test]
fn a_follow_up_of_an_alert_names_no_recipients_and_comes_from_a_party() {
    let exchange = Uuid::now_v7();
    let registry = registry();
    let named =
        Published::new("at-gw", "pq-alert.comment", "AT-KAMMER", &["FI-VALVIRA"]).on(exchange);
    let items = decoded(&[&named]);
    let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
    refused_with(&plan, Code::InvalidRecipients);
    let stranger = Published::new("se-gw", "pq-alert.comment", "SE-SOCIAL", &[]).on(exchange);
    let items = decoded(&[&stranger]);
    let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
    refused_with(&plan, Code::ActionNotAllowedForRole);
}

#[test]
fn a_recipient_disseminates_to_authorities_of_its_own_country() {
    let exchange = Uuid::now_v7();
    let registry = registry();
    let disseminate =
        Published::new("fi-gw", "pq-alert.disseminate", "FI-VALVIRA", &["FI-OTHER"]).on(exchange);
    let items = decoded(&[&disseminate]);
    let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
    assert!(
        plan.workflow_refusals.is_empty(),
        "{:?}",
        refusal_codes(&plan)
    );
    assert_eq!(
        plan.recipient_changes[&exchange],
        ["AT-KAMMER", "FI-VALVIRA", "FI-OTHER"]
    );
    let replay = &plan.replays[0];
    assert_eq!(replay.recipients, ["FI-OTHER"]);
    assert_eq!(replay.tag, format!("#{}", disseminate.message_id()));
    assert!(replay.broadcast.is_none(), "not news for subscribers");
    // The newcomer and the originator receive the dissemination itself.
    assert_eq!(plan.messages[0].recipients, ["FI-OTHER", "DE-AEKNO"]);
    assert!(plan.outbox.iter().all(|r| r.kind != OutboxKind::Broadcast));
    // Another country's authority, or one already a recipient, is refused.
    for named in ["SE-SOCIAL", "AT-KAMMER"] {
        let wrong =
            Published::new("fi-gw", "pq-alert.disseminate", "FI-VALVIRA", &[named]).on(exchange);
        let items = decoded(&[&wrong]);
        let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
        refused_with(&plan, Code::InvalidRecipients);
    }
}

#[test]
fn an_alert_is_due_from_the_date_in_its_payload() {
    let send = Published::new("de-gw", "pq-alert.send", "DE-AEKNO", &[]);
    let items = decoded(&[&send]);
    let registry = registry();
    let plan = planned(&items, Stored::default(), &registry);
    let due = &plan.field_deadlines[0];
    let decided: NaiveDate = crate::testing::example("pq-alert.send")["decision_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(due.exchange_id, send.opened());
    assert_eq!(due.field_date, decided);
    // Three days after the decision, counted to the end of the third day.
    assert_eq!(due.due_at.date_naive(), decided + chrono::Duration::days(4));
}

#[test]
fn closing_an_alert_starts_retention() {
    let exchange = Uuid::now_v7();
    let registry = registry();
    let close = Published::new("de-gw", "pq-alert.close", "DE-AEKNO", &[]).on(exchange);
    let items = decoded(&[&close]);
    let plan = planned(&items, stored(exchange, alert_in("sent", true)), &registry);
    assert_eq!(plan.closed, [exchange]);
}
