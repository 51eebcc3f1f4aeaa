//! The load: requesters, a responder that accepts then answers every
//! request, an alerter, and gateways for the alerts' recipients; every
//! application records what it was told and what it received.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imi_adapters::{Adapter, Inbox, Incoming, OutgoingMessage};
use imi_schemas::catalogue::{Catalogue, SourceFile};
use imi_schemas::ids::{ExchangeId, MessageId, MessageType};
use imi_tests::{diploma_request, follow_up, one_to_many, TestEnv};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Args;

pub(crate) const RESPONDER: &str = "DE-RESPONDER";
pub(crate) const ALERTER: &str = "NL-ALERTER";
const COUNTRIES: &[&str] = &["AT", "BE", "DK", "FI", "IT", "NL", "PL", "SE"];
/// Endpoint indexes in [`endpoints`]' order.
pub(crate) const RESPONDER_ENDPOINT: usize = 0;
const ALERTER_ENDPOINT: usize = 1;
const FLOOD_ENDPOINT: usize = 2;
const FIRST_REQUESTER: usize = 3;

/// Endpoints and the authorities each acts for.
pub(crate) fn endpoints(args: &Args) -> Vec<(String, Vec<String>)> {
    let mut specs = vec![
        ("resp".to_owned(), vec![RESPONDER.to_owned()]),
        ("alerter".to_owned(), vec![ALERTER.to_owned()]),
        ("flood".to_owned(), vec!["SE-FLOOD".to_owned()]),
    ];
    for i in 0..args.requesters {
        specs.push((format!("req{i}"), vec![format!("FI-REQUESTER-{i}")]));
    }
    let per = args.authorities_per_gateway;
    for g in 0..args.gateways {
        let authorities = (0..per)
            .map(|a| {
                let n = g * per + a;
                format!("{}-AUTH-{n}", COUNTRIES[n % COUNTRIES.len()])
            })
            .collect();
        specs.push((format!("gw{g:02}"), authorities));
    }
    specs
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Request,
    Accept,
    Answer,
    Alert,
}

/// A message the broker confirmed to its sender.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub kind: Kind,
    pub at: Instant,
    /// The endpoint a 1:1 message must reach (alerts: from the receipt).
    pub to_endpoint: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Receipted {
    pub at: Instant,
    pub exchange: String,
    pub recipients: Vec<String>,
}

#[derive(Default)]
pub(crate) struct Records {
    pub sent: HashMap<String, Sent>,
    /// Flood messages the broker confirmed, and the refusals they got.
    pub flooded: usize,
    pub flood_refused: usize,
    /// Sends the SDK gave up on (not confirmed: the sender knows).
    pub send_errors: u64,
    pub receipts: HashMap<String, Receipted>,
    pub rejections: HashMap<String, String>,
    /// Times each (endpoint, message) was handed to the application: a 1:1
    /// message by its id, an alert by its exchange.
    pub handed: HashMap<(usize, String), u32>,
    /// The responder's progress: request exchange → its accept's id.
    pub accepted: HashMap<String, String>,
    /// An accept's id → its exchange.
    pub accept_exchange: HashMap<String, String>,
    /// Accepts whose answer was sent.
    pub answered: HashSet<String>,
    /// Request exchange → the requester's endpoint.
    pub requester_of: HashMap<String, usize>,
}

#[derive(Clone)]
pub(crate) struct World {
    pub adapters: Arc<Vec<Adapter>>,
    pub records: Arc<Mutex<Records>>,
    /// Authority → endpoint index.
    pub serves: Arc<HashMap<String, usize>>,
    alert: serde_json::Value,
    stop_inboxes: CancellationToken,
}

impl World {
    pub(crate) async fn connect(
        env: Arc<TestEnv>,
        _args: &Args,
        specs: &[(String, Vec<String>)],
    ) -> anyhow::Result<World> {
        let mut adapters = Vec::new();
        for i in 0..specs.len() {
            adapters.push(env.adapter(i).await);
        }
        let serves = specs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, a))| a.iter().map(move |a| (a.clone(), i)))
            .collect();
        let files = imi_schemas::catalogue::read_folder(&env.config.catalogue_dir)?;
        let catalogue = Catalogue::parse(&files as &[SourceFile])
            .map_err(|e| anyhow::anyhow!("catalogue: {e:?}"))?;
        let alert_type = MessageType::try_from("pq-alert.send")?;
        let alert = catalogue
            .resolve(&alert_type)
            .and_then(|(_, a)| a.example.clone())
            .ok_or_else(|| anyhow::anyhow!("pq-alert.send has no example"))?;
        let world = World {
            adapters: Arc::new(adapters),
            records: Arc::default(),
            serves: Arc::new(serves),
            alert,
            stop_inboxes: CancellationToken::new(),
        };
        for i in 0..world.adapters.len() {
            let inbox = world.adapters[i].inbox(world.stop_inboxes.clone());
            tokio::spawn(world.clone().receive(i, inbox));
        }
        Ok(world)
    }

    /// Sends until `stop`: requests at the rate, an alert now and then.
    pub(crate) async fn run(self, args: &Args, stop: CancellationToken) {
        let mut tasks = Vec::new();
        let per_requester = (args.rate as f64 / args.requesters as f64).max(0.1);
        for r in 0..args.requesters {
            let world = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_requester));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.cancelled() => return,
                    }
                    let message = OutgoingMessage {
                        message_type: MessageType::try_from("pq-information-request.send").unwrap(),
                        sender: format!("FI-REQUESTER-{r}").as_str().try_into().unwrap(),
                        recipients: vec![RESPONDER.try_into().unwrap()],
                        exchange: None,
                        payload: diploma_request(),
                        schema_version: 1,
                        countries: Vec::new(),
                        message_id: None,
                    };
                    world
                        .send(
                            FIRST_REQUESTER + r,
                            message,
                            Kind::Request,
                            Some(RESPONDER_ENDPOINT),
                        )
                        .await;
                }
            }));
        }
        if args.flood > 0 {
            let world = self.clone();
            let flood = args.flood;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { world.flood(flood, stop).await }));
        }
        let world = self.clone();
        let every = Duration::from_secs(args.alert_every.max(1));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let alert = one_to_many(
                    "pq-alert.send",
                    ALERTER,
                    &[],
                    &[],
                    None,
                    world.alert.clone(),
                );
                world.send(ALERTER_ENDPOINT, alert, Kind::Alert, None).await;
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Sends once with a fixed `message_id` (retried with the same id, so
    /// the hub takes it once), and records it when the broker confirmed it.
    async fn send(&self, from: usize, mut message: OutgoingMessage, kind: Kind, to: Option<usize>) {
        let id = MessageId::try_from(uuid::Uuid::now_v7().to_string().as_str()).unwrap();
        message.message_id = Some(id);
        let at = Instant::now();
        for _ in 0..5 {
            match self.adapters[from].send(&message).await {
                Ok(id) => {
                    self.records.lock().unwrap().sent.insert(
                        id.to_string(),
                        Sent {
                            kind,
                            at,
                            to_endpoint: to,
                        },
                    );
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        self.records.lock().unwrap().send_errors += 1;
    }

    /// Tiny invalid messages, published in windows of confirms, until
    /// `count` or `stop`.
    async fn flood(&self, count: usize, stop: CancellationToken) {
        let adapter = &self.adapters[FLOOD_ENDPOINT];
        let user = adapter.endpoint().to_string();
        let mut sent = 0;
        while sent < count && !stop.is_cancelled() {
            let window = (count - sent).min(500);
            let results = futures_util::future::join_all((0..window).map(|_| {
                let properties = imi_broker::Properties {
                    message_id: Some(uuid::Uuid::now_v7().to_string()),
                    message_type: Some("pq-information-request.send".into()),
                    user_id: Some(user.clone()),
                    ..Default::default()
                };
                adapter.send_raw(properties, b"{}".to_vec())
            }))
            .await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            self.records.lock().unwrap().flooded += ok;
            sent += window;
        }
    }

    /// One endpoint's application: records and acks everything.
    async fn receive(self, endpoint: usize, mut inbox: Inbox) {
        while let Some(item) = inbox.next().await {
            let mut follow: Option<(Kind, String, Option<usize>)> = None;
            {
                let mut r = self.records.lock().unwrap();
                match &item.incoming {
                    Incoming::Receipt(receipt) => {
                        let id = receipt.message_id.to_string();
                        r.receipts.entry(id.clone()).or_insert(Receipted {
                            at: Instant::now(),
                            exchange: receipt.exchange_id.to_string(),
                            recipients: receipt.recipients.clone(),
                        });
                        // The responder answers once its accept is in.
                        let accept_of = r.accept_exchange.get(&id).cloned();
                        if let Some(exchange) = accept_of {
                            if endpoint == RESPONDER_ENDPOINT && r.answered.insert(id.clone()) {
                                let requester = r.requester_of.get(&exchange).copied();
                                follow = Some((Kind::Answer, exchange, requester));
                            }
                        }
                    }
                    Incoming::Rejection(_) if endpoint == FLOOD_ENDPOINT => {
                        r.flood_refused += 1;
                    }
                    Incoming::Rejection(rejection) => {
                        if let Some(id) = &rejection.message_id {
                            r.rejections
                                .insert(id.clone(), rejection.code.as_str().to_owned());
                        }
                    }
                    Incoming::Message(m) => {
                        let exchange = item.exchange_id.clone().unwrap_or_default();
                        let key = if m.message_type.starts_with("pq-alert.") {
                            format!("alert:{exchange}")
                        } else {
                            item.message_id.clone()
                        };
                        let n = r.handed.entry((endpoint, key)).or_default();
                        *n += 1;
                        let first = *n == 1;
                        if first
                            && endpoint == RESPONDER_ENDPOINT
                            && m.message_type == "pq-information-request.send"
                            && !r.accepted.contains_key(&exchange)
                        {
                            r.accepted.insert(exchange.clone(), String::new());
                            let requester = self.serves.get(&m.sender).copied();
                            if let Some(e) = requester {
                                r.requester_of.insert(exchange.clone(), e);
                            }
                            follow = Some((Kind::Accept, exchange, requester));
                        }
                    }
                    _ => {}
                }
            }
            let _ = item.ack().await;
            if let Some((kind, exchange, requester)) = follow {
                tokio::spawn(self.clone().respond(kind, exchange, requester));
            }
        }
    }

    /// The responder's accept (then, on its receipt, its answer).
    async fn respond(self, kind: Kind, exchange: String, requester: Option<usize>) {
        let Ok(exchange_id) = ExchangeId::try_from(exchange.as_str()) else {
            return;
        };
        let (action, payload) = match kind {
            Kind::Accept => (
                "accept",
                json!({"requested_answer_date": (chrono::Utc::now() + chrono::Duration::days(30)).date_naive().to_string()}),
            ),
            _ => (
                "answer",
                json!({"answers": [{"question": "PQ-Q-DIPLOMA-AUTHENTIC", "answer": "YES"}]}),
            ),
        };
        let message = follow_up(action, RESPONDER, &[], exchange_id, payload);
        let id = MessageId::try_from(uuid::Uuid::now_v7().to_string().as_str()).unwrap();
        if kind == Kind::Accept {
            let mut r = self.records.lock().unwrap();
            r.accept_exchange.insert(id.to_string(), exchange.clone());
            r.accepted.insert(exchange, id.to_string());
        }
        let mut message = message;
        message.message_id = Some(id);
        let at = Instant::now();
        for _ in 0..5 {
            if self.adapters[RESPONDER_ENDPOINT]
                .send(&message)
                .await
                .is_ok()
            {
                self.records.lock().unwrap().sent.insert(
                    id.to_string(),
                    Sent {
                        kind,
                        at,
                        to_endpoint: requester,
                    },
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.records.lock().unwrap().send_errors += 1;
    }

    /// Endpoints a receipted message must reach.
    pub(crate) fn expected_endpoints(&self, sent: &Sent, receipt: &Receipted) -> Vec<usize> {
        match sent.kind {
            Kind::Alert => {
                let mut e: Vec<usize> = receipt
                    .recipients
                    .iter()
                    .filter_map(|a| self.serves.get(a).copied())
                    .collect();
                e.sort_unstable();
                e.dedup();
                e
            }
            _ => sent.to_endpoint.into_iter().collect(),
        }
    }

    /// What is still to come: confirmed sends without an answer from the
    /// hub, and receipted messages not yet handed to every recipient.
    pub(crate) fn outstanding(&self) -> (usize, usize) {
        let r = self.records.lock().unwrap();
        let mut unanswered = r.flooded.saturating_sub(r.flood_refused);
        let mut undelivered = 0;
        for (id, sent) in &r.sent {
            if r.rejections.contains_key(id) {
                continue;
            }
            let Some(receipt) = r.receipts.get(id) else {
                unanswered += 1;
                continue;
            };
            let key = match sent.kind {
                Kind::Alert => format!("alert:{}", receipt.exchange),
                _ => id.clone(),
            };
            for e in self.expected_endpoints(sent, receipt) {
                if !r.handed.contains_key(&(e, key.clone())) {
                    undelivered += 1;
                }
            }
        }
        (unanswered, undelivered)
    }

    /// Waits until nothing is outstanding (and the responder has caught
    /// up), or `limit`.
    pub(crate) async fn drain(&self, env: &TestEnv, limit: Duration) {
        let started = Instant::now();
        let mut last_print = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        let pool = env.pool().await;
        while started.elapsed() < limit {
            let (unanswered, undelivered) = self.outstanding();
            // The hubs' own work too: batches a killed hub left unmarked are
            // re-sent and marked by a relay, which may still be catching up.
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM batches WHERE published_at IS NULL")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(-1);
            if unanswered == 0 && undelivered == 0 && unpublished == 0 {
                // Follow-ups triggered by the last deliveries may still be
                // on their way: done once nothing new is sent for a while.
                let sent = self.records.lock().unwrap().sent.len();
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (u, d) = self.outstanding();
                if u == 0 && d == 0 && self.records.lock().unwrap().sent.len() == sent {
                    if quiet_since.get_or_insert_with(Instant::now).elapsed()
                        >= Duration::from_secs(2)
                    {
                        return;
                    }
                    continue;
                }
            }
            quiet_since = None;
            if last_print.elapsed() > Duration::from_secs(10) {
                println!("  draining: {unanswered} sends without an answer, {undelivered} deliveries to come, {unpublished} batches unpublished");
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) async fn close(&self) {
        self.stop_inboxes.cancel();
        for a in self.adapters.iter() {
            a.close().await;
        }
    }
}
