//! The narrated demo: FI-VALVIRA asks DE-AEKNO to verify a nurse's diploma,
//! DE-AEKNO answers, FI-VALVIRA closes the case; plus one invalid request to
//! show a rejection. Every step goes through the hub.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use imi_adapters::{Adapter, EndpointConfig, EndpointTls, Inbox, Incoming, OutgoingMessage};
use imi_schemas::ids::{AuthorityId, ExchangeId, MessageId, MessageType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Party {
    adapter: Adapter,
    inbox: Inbox,
    authority: AuthorityId,
}

/// How the demo's systems reach the broker.
pub(crate) struct Link<'a> {
    pub(crate) amqp_url: &'a str,
    pub(crate) vhost: &'a str,
    /// With `amqps://`: the CA that signs the broker's certificate.
    pub(crate) ca_file: Option<PathBuf>,
    /// The responder logs in with this certificate (PKCS#12, password)
    /// instead of its password.
    pub(crate) responder_certificate: Option<(PathBuf, String)>,
}

async fn connect(
    link: &Link<'_>,
    spec: &str,
    client_certificate: Option<(PathBuf, String)>,
    stop: &CancellationToken,
) -> anyhow::Result<Party> {
    let mut parts = spec.splitn(3, ':');
    let (Some(endpoint), Some(password), Some(authority)) =
        (parts.next(), parts.next(), parts.next())
    else {
        bail!("`{spec}` is not id:password:authority");
    };
    let tls = (link.ca_file.is_some() || client_certificate.is_some()).then(|| EndpointTls {
        ca_file: link.ca_file.clone(),
        client_certificate,
    });
    let adapter = Adapter::connect(&EndpointConfig {
        tls,
        amqp_url: link.amqp_url.into(),
        vhost: link.vhost.into(),
        endpoint: endpoint.into(),
        password: password.into(),
    })
    .await
    .with_context(|| format!("connecting as {endpoint}"))?;
    let inbox = adapter.inbox(stop.clone());
    Ok(Party {
        adapter,
        inbox,
        authority: AuthorityId::try_from(authority)?,
    })
}

fn message(
    action: &str,
    from: &Party,
    to: Option<&Party>,
    exchange: Option<ExchangeId>,
    payload: serde_json::Value,
) -> OutgoingMessage {
    OutgoingMessage {
        message_type: MessageType::try_from(format!("pq-information-request.{action}").as_str())
            .expect("demo type"),
        sender: from.authority.clone(),
        recipients: to.map(|t| vec![t.authority.clone()]).unwrap_or_default(),
        exchange,
        payload,
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    }
}

fn is_type(incoming: &Incoming, action: &str) -> bool {
    matches!(incoming, Incoming::Message(m) if m.message_type == format!("pq-information-request.{action}"))
}

/// The next inbox item that `wanted` accepts, with its exchange id and
/// message id; anything else (left over from an earlier, interrupted demo
/// run) is acknowledged and skipped.
async fn next_item(
    party: &mut Party,
    what: &str,
    wanted: impl Fn(&Incoming) -> bool,
) -> anyhow::Result<(Option<String>, Incoming, String)> {
    loop {
        let item = party
            .inbox
            .next_within(Duration::from_secs(30))
            .await
            .with_context(|| format!("no {what} from the hub in 30 s: is it running?"))?;
        let out = (
            item.exchange_id.clone(),
            item.incoming.clone(),
            item.message_id.clone(),
        );
        item.ack().await?;
        if wanted(&out.1) {
            return Ok(out);
        }
        println!("   ({} skips an older inbox item)", party.authority);
    }
}

async fn next_matching(
    party: &mut Party,
    what: &str,
    wanted: impl Fn(&Incoming) -> bool,
) -> anyhow::Result<(Option<String>, Incoming)> {
    let (exchange, incoming, _) = next_item(party, what, wanted).await?;
    Ok((exchange, incoming))
}

async fn expect_receipt(party: &mut Party, message: MessageId) -> anyhow::Result<()> {
    let answers_it = |i: &Incoming| match i {
        Incoming::Receipt(r) => r.message_id == message.as_uuid(),
        Incoming::Rejection(r) => r.message_id.as_deref() == Some(message.to_string().as_str()),
        _ => false,
    };
    match next_matching(party, "receipt", answers_it).await?.1 {
        Incoming::Receipt(r) => {
            println!(
                "   hub  ✓ receipt to {}: exchange {} is now `{}`",
                party.authority, r.exchange_id, r.state
            );
            Ok(())
        }
        other => bail!("expected a receipt, got {other:?}"),
    }
}

pub(crate) async fn run(
    link: &Link<'_>,
    requester: &str,
    responder: &str,
    rounds: usize,
    interval_ms: u64,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let mut fi = connect(link, requester, None, &stop).await?;
    let mut de = connect(link, responder, link.responder_certificate.clone(), &stop).await?;
    println!(
        "connected: {} (endpoint {}) and {} (endpoint {}) to {}",
        fi.authority,
        fi.adapter.endpoint(),
        de.authority,
        de.adapter.endpoint(),
        link.amqp_url
    );
    if link.amqp_url.starts_with("amqps://") {
        println!(
            "   over TLS: {} logs in with its password, {} with its {}",
            fi.adapter.endpoint(),
            de.adapter.endpoint(),
            if link.responder_certificate.is_some() {
                "client certificate (no password)"
            } else {
                "password"
            }
        );
    }

    println!("\n── an invalid request: the date of birth is not an ISO date");
    let bad = json!({
        "professional": {"family_name": "Meikäläinen", "given_names": "Matti", "date_of_birth": "31.12.1980"},
        "profession": "PQ-DOCTOR",
        "diploma": {"title": "Lääketieteen lisensiaatti", "awarded_by": "Helsingin yliopisto", "awarded_on": "2006-06-01"},
        "questions": ["PQ-Q-GOOD-STANDING"],
        "requested_answer_date": "2026-12-31"
    });
    let bad_id = fi
        .adapter
        .send(&message("send", &fi, Some(&de), None, bad))
        .await?
        .to_string();
    let answer_to_bad = |i: &Incoming| matches!(i, Incoming::Rejection(r) if r.message_id.as_deref() == Some(bad_id.as_str()));
    if let (_, Incoming::Rejection(r)) = next_matching(&mut fi, "rejection", answer_to_bad).await? {
        let at: Vec<_> = r.errors.iter().map(|e| e.pointer.as_str()).collect();
        println!(
            "   hub  ✗ rejection `{}` at {:?}: {}",
            r.code.as_str(),
            at,
            r.detail
        );
    }

    alert(&mut de, &mut fi).await?;

    let people = [
        ("Virtanen", "Aino", "PQ-NURSE"),
        ("Korhonen", "Eero", "PQ-DOCTOR"),
        ("Nieminen", "Liisa", "PQ-DENTIST"),
    ];
    let mut round = 0;
    while rounds == 0 || round < rounds {
        let (family, given, profession) = people[round % people.len()];
        round += 1;
        println!(
            "\n── request {round}: {} asks {} to verify {given} {family}'s diploma ({profession})",
            fi.authority, de.authority
        );
        let payload = json!({
            "professional": {"family_name": family, "given_names": given, "date_of_birth": "1988-04-12"},
            "profession": profession,
            "diploma": {"title": "Degree in health care", "awarded_by": "Metropolia", "awarded_on": "2012-06-01"},
            "questions": ["PQ-Q-DIPLOMA-AUTHENTIC", "PQ-Q-GOOD-STANDING"],
            "requested_answer_date": "2026-12-15"
        });
        let id = fi
            .adapter
            .send(&message("send", &fi, Some(&de), None, payload))
            .await?;
        println!(
            "   {}  → sent pq-information-request.send (message {id})",
            fi.authority
        );
        expect_receipt(&mut fi, id).await?;

        let (exchange, incoming) =
            next_matching(&mut de, "request", |i| is_type(i, "send")).await?;
        let Incoming::Message(m) = incoming else {
            unreachable!("matched a message")
        };
        let exchange = ExchangeId::try_from(exchange.unwrap_or_default().as_str())?;
        println!(
            "   {}  ← received from {}: questions {}",
            de.authority, m.sender, m.envelope.payload["questions"]
        );
        let answers = json!({"answers": [
            {"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"},
            {"question": "PQ-Q-GOOD-STANDING", "answer": "YES", "comment": "Registered without restrictions."}
        ]});
        let answer_id = de
            .adapter
            .send(&message("answer", &de, None, Some(exchange), answers))
            .await?;
        println!("   {}  → answered on exchange {exchange}", de.authority);
        expect_receipt(&mut de, answer_id).await?;

        let (_, incoming) = next_matching(&mut fi, "answer", |i| is_type(i, "answer")).await?;
        if let Incoming::Message(m) = incoming {
            println!(
                "   {}  ← answer: {}",
                fi.authority, m.envelope.payload["answers"]
            );
        }
        let close_id = fi
            .adapter
            .send(&message(
                "close",
                &fi,
                None,
                Some(exchange),
                json!({"satisfied": true}),
            ))
            .await?;
        println!("   {}  → closed the exchange", fi.authority);
        expect_receipt(&mut fi, close_id).await?;
        next_matching(&mut de, "closure", |i| is_type(i, "close")).await?;
        println!(
            "   {}  ← {} closed exchange {exchange}",
            de.authority, fi.authority
        );

        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    stop.cancel();
    fi.adapter.close().await;
    de.adapter.close().await;
    Ok(())
}

/// A 1:N alert: `from` warns every authority registered for `pq-alert`; `to`
/// receives its copy and acknowledges it; `from` is told.
async fn alert(from: &mut Party, to: &mut Party) -> anyhow::Result<()> {
    println!(
        "\n── an alert: {} tells every authority registered for pq-alert that a doctor may no longer practise",
        from.authority
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let alert = OutgoingMessage {
        message_type: MessageType::try_from("pq-alert.send").expect("demo type"),
        sender: from.authority.clone(),
        recipients: Vec::new(),
        countries: Vec::new(),
        exchange: None,
        payload: json!({
            "professional": {"family_name": "Schneider", "given_names": "Markus", "date_of_birth": "1975-09-23", "nationality": "DE"},
            "profession": "PQ-DOCTOR",
            "deciding_authority": {"authority_name": "Verwaltungsgericht Düsseldorf", "country": "DE"},
            "restriction_scope": {"measure": "PQ-MEASURE-PROHIBITION", "description": "The licence to practise medicine is suspended in full."},
            "restriction_period": {"start_date": today, "indefinite": true},
            "decision_date": today
        }),
        schema_version: 1,
        message_id: None,
    };
    let id = from.adapter.send(&alert).await?;
    println!(
        "   {}  → sent pq-alert.send to every registered authority",
        from.authority
    );
    expect_receipt(from, id).await?;
    let (exchange, _, copy) = next_item(
        to,
        "alert",
        |i| matches!(i, Incoming::Message(m) if m.message_type == "pq-alert.send"),
    )
    .await?;
    println!("   {}  ← alert received (its copy {copy})", to.authority);
    let ack = to
        .adapter
        .acknowledge(uuid::Uuid::parse_str(&copy)?, exchange.as_deref(), &[])
        .await?;
    println!("   {}  → acknowledged it", to.authority);
    expect_receipt(to, ack).await?;
    let (_, incoming) = next_matching(from, "acknowledgement", |i| {
        matches!(i, Incoming::Acknowledgements(_))
    })
    .await?;
    if let Incoming::Acknowledgements(a) = incoming {
        for a in a.acknowledgements {
            println!(
                "   {}  ← {} acknowledged the alert",
                from.authority, a.authority
            );
        }
    }
    Ok(())
}
