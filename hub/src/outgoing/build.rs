//! One builder per kind of message the hub sends.

use std::collections::BTreeMap;

use imi_schemas::ids::MessageId;
use imi_schemas::protocol::{
    alert_routing_key, receipt_id, Acknowledged, AcknowledgementBatch, DeadlineNotice, Receipt,
    ValidationDecision, TYPE_ACKNOWLEDGEMENTS, TYPE_DEADLINE, TYPE_RECEIPTS, TYPE_REJECTION,
    TYPE_VALIDATION,
};
use uuid::Uuid;

use super::{derived, DeliveryHeaders, OutboxKind, OutboxRow};
use crate::inbound::Refusal;
use crate::registry::Registry;

/// A message to send, as stored or as just received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copy<'a> {
    pub(crate) message_id: Uuid,
    pub(crate) exchange_id: Uuid,
    pub(crate) message_type: &'a str,
    pub(crate) sender: &'a str,
    pub(crate) schema_version: i32,
    pub(crate) traceparent: Option<&'a str>,
    pub(crate) raw: &'a [u8],
}

impl Copy<'_> {
    fn row(
        &self,
        id: Uuid,
        kind: OutboxKind,
        endpoint: String,
        headers: DeliveryHeaders<'_>,
    ) -> OutboxRow {
        OutboxRow {
            id,
            kind,
            source_message_id: self.message_id.to_string(),
            endpoint,
            recipients: headers.recipients.to_vec(),
            exchange_id: Some(self.exchange_id),
            message_type: self.message_type.to_owned(),
            headers: headers.to_map(),
            body: self.raw.to_vec(),
        }
    }

    fn headers<'h>(&'h self, recipients: &'h [String]) -> DeliveryHeaders<'h> {
        DeliveryHeaders {
            sender: self.sender,
            recipients,
            schema_version: self.schema_version,
            traceparent: self.traceparent,
            parent_exchange: None,
            acknowledgement_requested: false,
        }
    }
}

/// One recipient authority's copy of a 1:N message (see migration 8).
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub(crate) outbox_id: Uuid,
    pub(crate) authority: String,
    pub(crate) message_id: Uuid,
    pub(crate) exchange_id: Uuid,
    pub(crate) endpoint: String,
}

/// The copies of a 1:1 message: one per recipient endpoint (`by_endpoint`:
/// endpoint → the recipients it serves). The recipient sees the sender's
/// `message_id`; when the message goes to several endpoints (a forward tells
/// the requester too), each endpoint's copy has an id of its own.
pub(crate) fn request_copies(
    copy: &Copy<'_>,
    by_endpoint: BTreeMap<String, Vec<String>>,
    parent_exchange: Option<Uuid>,
) -> Vec<OutboxRow> {
    let single = by_endpoint.len() == 1;
    by_endpoint
        .into_iter()
        .map(|(endpoint, recipients)| {
            let id = if single {
                copy.message_id
            } else {
                derived(copy.message_id, &endpoint)
            };
            let headers = DeliveryHeaders {
                parent_exchange,
                ..copy.headers(&recipients)
            };
            copy.row(id, OutboxKind::Delivery, endpoint.clone(), headers)
        })
        .collect()
}

/// The copies of a 1:N message to `recipients`: one outbox row (queue copy)
/// per endpoint, naming that endpoint's recipient authorities, and one
/// delivery row per authority. `tag` tells these copies apart from earlier
/// copies of the same message to the same endpoints (a dissemination's
/// newcomers). Errs with an authority the registry does not know.
pub(crate) fn fan_out(
    copy: &Copy<'_>,
    recipients: &[String],
    registry: &Registry,
    tag: &str,
) -> Result<(Vec<OutboxRow>, Vec<DeliveryRow>), String> {
    let mut by_endpoint: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in recipients {
        let authority = registry.authority(r).ok_or_else(|| r.clone())?;
        by_endpoint
            .entry(authority.endpoint.as_str())
            .or_default()
            .push(r.clone());
    }
    let mut outbox = Vec::with_capacity(by_endpoint.len());
    let mut deliveries = Vec::with_capacity(recipients.len());
    for (endpoint, authorities) in by_endpoint {
        let id = derived(copy.message_id, &format!("delivery:{endpoint}{tag}"));
        deliveries.extend(authorities.iter().map(|a| DeliveryRow {
            outbox_id: id,
            authority: a.clone(),
            message_id: copy.message_id,
            exchange_id: copy.exchange_id,
            endpoint: endpoint.to_owned(),
        }));
        let headers = DeliveryHeaders {
            acknowledgement_requested: true,
            ..copy.headers(&authorities)
        };
        outbox.push(copy.row(id, OutboxKind::Delivery, endpoint.to_owned(), headers));
    }
    Ok((outbox, deliveries))
}

/// The copy of a released 1:N message on the `imi.alerts` topic exchange;
/// its routing key (`<area>.<procedure>.<origin country>`) travels in the
/// outbox's endpoint column. Subscribers are not recipients: nothing to
/// acknowledge, nobody named.
pub(crate) fn broadcast(copy: &Copy<'_>, area: &str, procedure: &str) -> OutboxRow {
    let origin = copy.sender.get(..2).unwrap_or("");
    let key = alert_routing_key(area, procedure, origin);
    let id = derived(copy.message_id, "broadcast:");
    copy.row(id, OutboxKind::Broadcast, key, copy.headers(&[]))
}

/// A coordinator handed a request to a new responder: the opening message
/// as it was sent, addressed to it.
pub(crate) fn reassigned(
    opening: &Copy<'_>,
    to: &str,
    endpoint: String,
    parent_exchange: Option<Uuid>,
) -> OutboxRow {
    let mut name = opening.message_id.as_bytes().to_vec();
    name.extend_from_slice(b"reassign");
    name.extend_from_slice(to.as_bytes());
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, &name);
    let recipients = [to.to_owned()];
    let headers = DeliveryHeaders {
        parent_exchange,
        ..opening.headers(&recipients)
    };
    opening.row(id, OutboxKind::Delivery, endpoint, headers)
}

/// A message the hub itself writes (receipts, rejections, notices): its own
/// body, no headers; the caller sets its id and what it answers.
fn own(kind: OutboxKind, message_type: &str, endpoint: String, body: Vec<u8>) -> OutboxRow {
    OutboxRow {
        id: Uuid::nil(),
        kind,
        source_message_id: String::new(),
        endpoint,
        recipients: Vec::new(),
        exchange_id: None,
        message_type: message_type.to_owned(),
        headers: BTreeMap::new(),
        body,
    }
}

/// `ReceiptBatch` as it goes on the wire, serialized from borrowed receipts:
/// a batch's receipts are both stored (in this row) and held by the pipeline,
/// and need not be copied for it.
#[derive(serde::Serialize)]
struct ReceiptBatchOf<'a> {
    receipts: &'a [Receipt],
}

/// The message carrying `receipts` to a sender endpoint. Its id is derived
/// from the receipts it carries, so the same set re-sent has the same id.
pub(crate) fn receipts(endpoint: String, receipts: &[Receipt]) -> OutboxRow {
    let mut name = Vec::with_capacity(receipts.len() * 16);
    for r in receipts {
        let id = receipt_id(MessageId::new(r.message_id));
        name.extend_from_slice(id.as_uuid().as_bytes());
    }
    let source = receipts
        .first()
        .map(|r| r.message_id.to_string())
        .unwrap_or_default();
    let body = serde_json::to_vec(&ReceiptBatchOf { receipts }).expect("receipts serialize");
    OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        source_message_id: source,
        ..own(OutboxKind::Receipts, TYPE_RECEIPTS, endpoint, body)
    }
}

/// The rejection's message, when the sender has an inbox to answer.
pub(crate) fn rejection(refusal: &Refusal) -> Option<OutboxRow> {
    let endpoint = refusal.reply_to.as_ref()?;
    let source = refusal.message_id.clone().unwrap_or_default();
    let mut name = source.clone().into_bytes();
    name.extend_from_slice(&refusal.digest);
    name.extend_from_slice(refusal.rejection.code.as_str().as_bytes());
    let body = serde_json::to_vec(&refusal.rejection).expect("rejection serializes");
    Some(OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        source_message_id: source,
        ..own(
            OutboxKind::Rejection,
            TYPE_REJECTION,
            endpoint.to_string(),
            body,
        )
    })
}

/// A deadline's reminder or overdue notice for authority `to`: the authority
/// expected to act, or (for a missed deadline with a legal consequence) the
/// other party. One id per exchange, deadline, kind and due time, and per
/// other party told.
pub(crate) fn deadline_notice(notice: &DeadlineNotice, to: &str, endpoint: String) -> OutboxRow {
    let mut name = format!(
        "{}{}{}{}",
        notice.exchange_id,
        notice.deadline,
        notice.kind,
        notice.due_at.timestamp()
    );
    if to != notice.authority {
        name.push_str(to);
    }
    let body = serde_json::to_vec(notice).expect("notice serializes");
    OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()),
        source_message_id: notice.exchange_id.to_string(),
        recipients: vec![to.to_owned()],
        exchange_id: Some(notice.exchange_id),
        ..own(OutboxKind::Notice, TYPE_DEADLINE, endpoint, body)
    }
}

/// A reminder to a recipient authority that has not acknowledged copy
/// `copy_id`; one per copy and authority.
pub(crate) fn ack_reminder(copy_id: Uuid, notice: &DeadlineNotice, endpoint: String) -> OutboxRow {
    let mut name = copy_id.as_bytes().to_vec();
    name.extend_from_slice(notice.authority.as_bytes());
    name.extend_from_slice(b"ack-reminder");
    let body = serde_json::to_vec(notice).expect("notice serializes");
    OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        source_message_id: copy_id.to_string(),
        recipients: vec![notice.authority.clone()],
        exchange_id: Some(notice.exchange_id),
        ..own(OutboxKind::Notice, TYPE_DEADLINE, endpoint, body)
    }
}

/// The originator learns its coordinator's decision. A fresh id: the same
/// exchange may be refused, redrafted and decided on again.
pub(crate) fn validation_notice(
    decision: &ValidationDecision,
    originator: &str,
    endpoint: String,
) -> OutboxRow {
    let body = serde_json::to_vec(decision).expect("decision serializes");
    OutboxRow {
        id: Uuid::new_v4(),
        source_message_id: decision.exchange_id.to_string(),
        recipients: vec![originator.to_owned()],
        exchange_id: Some(decision.exchange_id),
        ..own(OutboxKind::Notice, TYPE_VALIDATION, endpoint, body)
    }
}

/// The originator's endpoint learns who acknowledged; the id is derived
/// from the acknowledgements it carries.
pub(crate) fn acknowledgements(endpoint: String, acknowledgements: Vec<Acknowledged>) -> OutboxRow {
    let mut name = Vec::new();
    for a in &acknowledgements {
        name.extend_from_slice(a.message_id.as_bytes());
        name.extend_from_slice(a.authority.as_bytes());
    }
    let source = acknowledgements
        .first()
        .map(|a| a.message_id.to_string())
        .unwrap_or_default();
    let body = serde_json::to_vec(&AcknowledgementBatch { acknowledgements })
        .expect("acknowledgements serialize");
    OutboxRow {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &name),
        source_message_id: source,
        ..own(
            OutboxKind::Acknowledgements,
            TYPE_ACKNOWLEDGEMENTS,
            endpoint,
            body,
        )
    }
}
