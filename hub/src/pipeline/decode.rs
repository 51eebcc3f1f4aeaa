//! Step 1–2 of the pipeline for one delivery, with no database: parse the
//! AMQP properties and body, identify the endpoint from the broker-validated
//! `user_id`, validate the payload, authorize sender and recipients.

use chrono::{DateTime, NaiveDate, Utc};
use imi_broker::Properties;
use imi_schemas::catalogue::{
    Catalogue, DeadlineRuns, Procedure, ProcedureKind, RecipientRule, VALIDATION_STATE,
};
use imi_schemas::envelope::Envelope;
use imi_schemas::ids::{AuthorityId, CountryCode, ExchangeId, MessageId, MessageType};
use imi_schemas::protocol::{
    Acknowledgement, FieldError, Rejection, RejectionCode, HEADER_SCHEMA_VERSION,
    HEADER_TRACEPARENT, TYPE_ACKNOWLEDGEMENT,
};
use sha2::{Digest, Sha256};

use crate::inbound::{at as field, Ack, Decoded, FieldDeadline, Inbound, OneToMany, Refusal, Step};
use crate::registry::{Registry, Status};
use crate::subjects::SubjectKeyer;

/// Limits and context for decoding.
pub(crate) struct DecodeContext<'a> {
    pub(crate) catalogue: &'a Catalogue,
    pub(crate) registry: &'a Registry,
    pub(crate) max_body_bytes: usize,
    pub(crate) now: DateTime<Utc>,
    pub(crate) subjects: &'a SubjectKeyer,
    pub(crate) data_keys: &'a crate::at_rest::DataKeys,
}

pub(crate) fn decode(
    ctx: &DecodeContext<'_>,
    properties: &Properties,
    mut body: Vec<u8>,
) -> Decoded {
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let body_size = body.len();

    // Who is speaking: the broker guarantees user_id equals the connection's user.
    let endpoint = properties
        .user_id
        .as_deref()
        .and_then(|u| ctx.registry.endpoint(u))
        .filter(|e| e.status == Status::Active);

    let refuse = |body: Vec<u8>, code: RejectionCode, detail: String, errors: Vec<FieldError>| {
        let mut body = body;
        body.truncate(ctx.max_body_bytes);
        Decoded::Refused(Box::new(Refusal {
            message_id: properties.message_id.clone(),
            user_id: properties.user_id.clone(),
            message_type: properties.message_type.clone(),
            correlation_id: properties.correlation_id.clone(),
            headers: properties
                .headers
                .iter()
                .filter(|(k, _)| *k == HEADER_SCHEMA_VERSION || *k == HEADER_TRACEPARENT)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            reply_to: endpoint.map(|e| e.id.clone()),
            rejection: Rejection::new(properties.message_id.clone(), code, detail, errors, ctx.now),
            body,
            body_size,
            digest,
        }))
    };

    let Some(endpoint) = endpoint else {
        let detail = match &properties.user_id {
            None => "the message has no user_id property".to_owned(),
            Some(u) => format!("user `{u}` is not an active endpoint"),
        };
        return refuse(
            body,
            RejectionCode::UnknownEndpoint,
            detail,
            field("#/properties/user_id", "unknown endpoint"),
        );
    };
    let message_id = match properties.message_id.as_deref().map(MessageId::try_from) {
        Some(Ok(id)) => id,
        Some(Err(e)) => {
            return refuse(
                body,
                RejectionCode::InvalidMessageId,
                e.to_string(),
                field("#/properties/message_id", "not a UUID"),
            )
        }
        None => {
            return refuse(
                body,
                RejectionCode::InvalidMessageId,
                "the message has no message_id property".into(),
                field("#/properties/message_id", "missing"),
            )
        }
    };
    if body_size > ctx.max_body_bytes {
        let detail = format!(
            "the body has {body_size} bytes; the hub accepts at most {}",
            ctx.max_body_bytes
        );
        return refuse(body, RejectionCode::OversizedBody, detail, Vec::new());
    }
    let raw_type = properties.message_type.as_deref().unwrap_or("");
    if raw_type == TYPE_ACKNOWLEDGEMENT {
        return match serde_json::from_slice::<Acknowledgement>(&body) {
            Ok(ack)
                if ack.authorities.iter().all(|a| {
                    AuthorityId::try_from(a.as_str())
                        .is_ok_and(|a| endpoint.authorities.contains(&a))
                }) =>
            {
                Decoded::Acknowledgement(Box::new(Ack {
                    message_id,
                    sender_endpoint: endpoint.id.clone(),
                    acknowledged: ack.message_id,
                    authorities: ack.authorities,
                    digest,
                    raw: body,
                }))
            }
            Ok(_) => {
                let detail = format!(
                    "endpoint `{}` acknowledges only for its own authorities",
                    endpoint.id
                );
                refuse(
                    body,
                    RejectionCode::SenderNotServedByEndpoint,
                    detail,
                    field("/authorities", "not served by this endpoint"),
                )
            }
            Err(e) => refuse(
                body,
                RejectionCode::InvalidEnvelope,
                format!("not an acknowledgement: {e}"),
                field("", e.to_string()),
            ),
        };
    }
    let resolved = MessageType::try_from(raw_type)
        .ok()
        .and_then(|t| ctx.catalogue.resolve(&t).map(|(p, a)| (t, p, a)));
    let Some((message_type, procedure, action)) = resolved else {
        let detail = format!("`{raw_type}` is not `<procedure>.<action>` of a catalogue procedure");
        return refuse(
            body,
            RejectionCode::UnknownMessageType,
            detail,
            field("#/properties/type", "unknown message type"),
        );
    };
    // An unparsable version becomes 0, which no procedure lists.
    let raw_version = properties.headers.get(HEADER_SCHEMA_VERSION);
    let schema_version = raw_version.map_or(1, |v| v.parse::<u32>().unwrap_or_default());
    if !procedure.accepts_version(schema_version) {
        let detail = format!(
            "header {HEADER_SCHEMA_VERSION} is `{}`: {} accepts schema versions {:?}, sent as an AMQP integer or a string of digits",
            raw_version.map(String::as_str).unwrap_or_default().chars().take(40).collect::<String>(),
            procedure.code,
            procedure.schema_versions
        );
        return refuse(
            body,
            RejectionCode::UnsupportedSchemaVersion,
            detail,
            field(
                &format!("#/properties/headers/{HEADER_SCHEMA_VERSION}"),
                "unsupported",
            ),
        );
    }

    // One parse; serde tells a syntax error from a shape error.
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return refuse(
                body,
                RejectionCode::InvalidEnvelope,
                e.to_string(),
                field("", e.to_string()),
            )
        }
        Err(e) => {
            return refuse(
                body,
                RejectionCode::MalformedJson,
                e.to_string(),
                field("", "not JSON"),
            )
        }
    };

    let sender = match AuthorityId::try_from(envelope.sender.as_str()) {
        Ok(s) if endpoint.authorities.contains(&s) => s,
        _ => {
            let detail = format!(
                "endpoint `{}` does not act for `{}`",
                endpoint.id, envelope.sender
            );
            return refuse(
                body,
                RejectionCode::SenderNotServedByEndpoint,
                detail,
                field("/sender", "not served by this endpoint"),
            );
        }
    };
    let sender_ok = ctx
        .registry
        .authority(sender.as_str())
        .is_some_and(|a| a.may_use(&procedure.code));
    if !sender_ok {
        let detail = format!(
            "`{sender}` is not active or not registered for {}",
            procedure.code
        );
        return refuse(
            body,
            RejectionCode::SenderNotAuthorized,
            detail,
            field("/sender", "not registered for the procedure"),
        );
    }

    if let Err(errors) = action.validate(&envelope.payload) {
        let detail = format!(
            "the payload does not match the form of {message_type} ({} problem(s))",
            errors.len()
        );
        return refuse(body, RejectionCode::InvalidPayload, detail, errors);
    }

    let mut recipients = Vec::with_capacity(envelope.recipients.len());
    for (i, raw) in envelope.recipients.iter().enumerate() {
        let pointer = format!("/recipients/{i}");
        let Some(authority) = AuthorityId::try_from(raw.as_str())
            .ok()
            .and_then(|id| ctx.registry.authority(id.as_str()))
        else {
            return refuse(
                body,
                RejectionCode::UnknownRecipient,
                format!("`{raw}` is not a registered authority"),
                field(&pointer, "unknown authority"),
            );
        };
        let endpoint_active = ctx
            .registry
            .endpoint(authority.endpoint.as_str())
            .is_some_and(|e| e.status == Status::Active);
        if !authority.may_use(&procedure.code) || !endpoint_active {
            let detail = format!(
                "`{raw}` is not active or not registered for {}",
                procedure.code
            );
            return refuse(
                body,
                RejectionCode::RecipientNotAuthorized,
                detail,
                field(&pointer, "not registered for the procedure"),
            );
        }
        recipients.push(authority.id.clone());
    }

    let one_to_many = procedure.kind == ProcedureKind::Notification;
    if one_to_many && action.opens {
        match resolve_recipients(ctx, procedure, &sender, &envelope.countries, recipients) {
            Ok(resolved) => recipients = resolved,
            Err((code, detail, errors)) => return refuse(body, code, detail, errors),
        }
    } else if !envelope.countries.is_empty() {
        return refuse(
            body,
            RejectionCode::InvalidRecipients,
            format!("{message_type} takes no `countries`: only a 1:N procedure with the `countries` rule does"),
            field("/countries", "not for this action"),
        );
    }

    let exchange = if action.opens && one_to_many {
        None
    } else if action.opens {
        if recipients.len() != 1 {
            let detail = format!(
                "{message_type} opens a 1:1 request and needs exactly one recipient, not {}",
                recipients.len()
            );
            return refuse(
                body,
                RejectionCode::InvalidRecipients,
                detail,
                field("/recipients", "exactly one recipient"),
            );
        }
        None
    } else {
        match properties
            .correlation_id
            .as_deref()
            .map(ExchangeId::try_from)
        {
            Some(Ok(id)) => Some(id),
            _ => {
                let detail = format!(
                    "{message_type} continues an exchange: set correlation_id to its exchange id"
                );
                return refuse(
                    body,
                    RejectionCode::UnknownExchange,
                    detail,
                    field("#/properties/correlation_id", "missing or not a UUID"),
                );
            }
        }
    };

    let field_deadlines = if one_to_many && action.opens {
        field_deadlines(ctx.catalogue, procedure, &sender, &envelope.payload)
    } else {
        Vec::new()
    };
    let subject_keys = ctx.subjects.keys_of(procedure, &envelope.payload);
    let facts = crate::facts::of(procedure, &envelope.payload);
    let sealed = ctx.data_keys.seal(&body);
    body.shrink_to_fit();
    Decoded::Inbound(Box::new(Inbound {
        message_id,
        message_type,
        schema_version,
        sender,
        sender_endpoint: endpoint.id.clone(),
        recipients,
        exchange,
        step: Step {
            opens: action.opens,
            reassigns: action.reassigns,
            splits: action.splits,
            opening_state: procedure.opening_state().unwrap_or_default().to_owned(),
            by: action.by,
            from: action.from.clone(),
            to: action.to.clone(),
            closes: procedure.closes_in(&action.to),
            one_to_many: one_to_many.then(|| OneToMany {
                area: procedure.area.to_string(),
                broadcasts: action.broadcasts,
                disseminates: action.disseminates,
                can_be_validated: procedure.states.iter().any(|s| s == VALIDATION_STATE),
                field_deadlines,
            }),
        },
        raw: body,
        digest,
        // Passed on only in W3C form: what a recipient's tracing would read.
        traceparent: properties
            .headers
            .get(HEADER_TRACEPARENT)
            .filter(|t| is_traceparent(t))
            .cloned(),
        subject_keys,
        sealed,
        facts,
    }))
}

type Refused = (RejectionCode, String, Vec<FieldError>);

/// The recipients of a 1:N exchange, by the procedure's rule: the authorities
/// named, those registered for the procedure in the countries named, or in
/// every country; plus the Commission where the procedure says. Never the
/// sender. Only active authorities behind active endpoints.
fn resolve_recipients(
    ctx: &DecodeContext<'_>,
    procedure: &Procedure,
    sender: &AuthorityId,
    countries: &[String],
    named: Vec<AuthorityId>,
) -> Result<Vec<AuthorityId>, Refused> {
    let mut chosen: Vec<CountryCode> = Vec::with_capacity(countries.len());
    for (i, raw) in countries.iter().enumerate() {
        match CountryCode::try_from(raw.as_str()) {
            Ok(c) if !c.is_commission() => chosen.push(c),
            _ => {
                return Err((
                    RejectionCode::InvalidRecipients,
                    format!("`{raw}` is not a Member State code"),
                    field(&format!("/countries/{i}"), "not a Member State"),
                ))
            }
        }
    }
    let rule = procedure.recipients;
    match rule {
        RecipientRule::Countries if chosen.is_empty() => {
            return Err((
                RejectionCode::InvalidRecipients,
                format!(
                    "{} is sent to countries: name them in `countries`",
                    procedure.code
                ),
                field("/countries", "at least one country"),
            ))
        }
        RecipientRule::Countries => {}
        _ if !chosen.is_empty() => {
            return Err((
                RejectionCode::InvalidRecipients,
                format!("{} does not choose recipients by country", procedure.code),
                field("/countries", "not for this procedure"),
            ))
        }
        RecipientRule::AllCountries if !named.is_empty() => {
            return Err((
                RejectionCode::InvalidRecipients,
                format!(
                    "{} goes to every country; name no recipients",
                    procedure.code
                ),
                field("/recipients", "not for this procedure"),
            ))
        }
        _ => {}
    }
    let by_rule = |country: CountryCode| match rule {
        RecipientRule::AllCountries => !country.is_commission(),
        RecipientRule::Countries => chosen.contains(&country),
        _ => false,
    };
    let mut recipients: Vec<AuthorityId> = named;
    recipients.extend(
        ctx.registry
            .reachable(&procedure.code)
            .filter(|a| {
                let country = a.country();
                by_rule(country) || (procedure.commission && country.is_commission())
            })
            .cloned(),
    );
    recipients.retain(|a| a != sender);
    recipients.sort();
    recipients.dedup();
    if recipients.is_empty() {
        return Err((
            RejectionCode::NoRecipients,
            format!(
                "no active authority is registered for {} where it is sent",
                procedure.code
            ),
            field("/recipients", "nobody to send it to"),
        ));
    }
    Ok(recipients)
}

/// The dates deadlines count from, read from the opening payload (the form
/// has validated them as dates), and when each falls due by the sender's
/// country's calendar.
fn field_deadlines(
    catalogue: &Catalogue,
    procedure: &Procedure,
    sender: &AuthorityId,
    payload: &serde_json::Value,
) -> Vec<FieldDeadline> {
    let calendar = catalogue.calendar(sender.country().as_str());
    procedure
        .deadlines
        .iter()
        .filter_map(|d| match &d.runs {
            DeadlineRuns::FromField(f) => payload
                .get(f)
                .and_then(|v| v.as_str())
                .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
                .map(|date| FieldDeadline {
                    code: d.code.clone(),
                    date,
                    due_at: d.period.due_after_date(date, &calendar),
                }),
            DeadlineRuns::InStates { .. } => None,
        })
        .collect()
}

/// `version-traceid-parentid-flags` in lower-case hex (W3C Trace Context).
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts.as_slice(), [v, t, p, f]
        if v.len() == 2 && t.len() == 32 && p.len() == 16 && f.len() == 2
            && parts.iter().all(|s| hex(s)))
}
