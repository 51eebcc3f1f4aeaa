//! 1:N alerts and notifications end to end: recipients by rule (explicit, by
//! country, all countries, plus the Commission), national validation before
//! broadcast, drafts, dissemination, follow-ups reaching every recipient,
//! acknowledgement tracking and reminders, late alerts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use imi_adapters::{Adapter, Inbox, Incoming};
use imi_hub::accounts::{self, AccountRole, Scope};
use imi_hub::clock::{Clock, ManualClock};
use imi_schemas::ids::{AreaCode, AuthorityId, CountryCode, ExchangeId};
use imi_schemas::protocol::{Decision, Receipt, Rejection, RejectionCode, ValidationDecision};
use imi_tests::{
    assert_quiet, call_api, example, next_acked, one_to_many, open_inbox, RunningHub, TestEnv,
};
use serde_json::json;

const PROCEDURES: &[&str] = &[
    "pq-alert",
    "services-alert",
    "cultural-objects-discovery-notification",
];

/// Five endpoints in four countries and the Commission; DE-LAGESO raises
/// the alerts.
async fn env() -> TestEnv {
    TestEnv::with_registrations(
        &[
            ("de", &["DE-LAGESO", "DE-AEKNO"]),
            ("at", &["AT-GESUNDHEIT", "AT-WKO"]),
            ("fi", &["FI-VALVIRA"]),
            ("it", &["IT-SALUTE"]),
            ("eu", &["EU-COMMISSION"]),
        ],
        PROCEDURES,
    )
    .await
}

struct Scene {
    env: TestEnv,
    hub: RunningHub,
    adapters: Vec<Adapter>,
    inboxes: Vec<Inbox>,
    backlog: Vec<VecDeque<(String, Incoming)>>,
}

const DE: usize = 0;
const AT: usize = 1;
const FI: usize = 2;
const IT: usize = 3;
const EU: usize = 4;

impl Scene {
    async fn start(env: TestEnv, clock: Option<Arc<ManualClock>>) -> Scene {
        let hub = match clock {
            Some(c) => env.start_hub_with("alerts", c).await,
            None => env.start_hub().await,
        };
        let mut adapters = Vec::new();
        let mut inboxes = Vec::new();
        for i in 0..env.endpoints.len() {
            let a = env.adapter(i).await;
            inboxes.push(open_inbox(&a).0);
            adapters.push(a);
        }
        Scene {
            backlog: inboxes.iter().map(|_| VecDeque::new()).collect(),
            env,
            hub,
            adapters,
            inboxes,
        }
    }

    async fn finish(self) {
        imi_tests::finish(self.env, self.hub, self.adapters).await;
    }
}

/// A routed message: (message_id, type, recipient authorities).
type Got = (String, String, Vec<String>);

impl Scene {
    /// The first inbox item `pick` wants: from what earlier calls set aside,
    /// else from the inbox (setting the others aside, in order).
    async fn take(&mut self, i: usize, pick: impl Fn(&Incoming) -> bool) -> (String, Incoming) {
        if let Some(pos) = self.backlog[i].iter().position(|x| pick(&x.1)) {
            return self.backlog[i].remove(pos).unwrap();
        }
        loop {
            let (id, _, incoming) = next_acked(&mut self.inboxes[i], 20).await;
            if pick(&incoming) {
                return (id, incoming);
            }
            self.backlog[i].push_back((id, incoming));
        }
    }

    async fn receipt(&mut self, i: usize) -> Receipt {
        match self.take(i, |x| matches!(x, Incoming::Receipt(_))).await.1 {
            Incoming::Receipt(r) => r,
            _ => unreachable!(),
        }
    }

    async fn rejection(&mut self, i: usize) -> Rejection {
        match self
            .take(i, |x| matches!(x, Incoming::Rejection(_)))
            .await
            .1
        {
            Incoming::Rejection(r) => r,
            _ => unreachable!(),
        }
    }

    /// The next `n` routed messages of endpoint `i`, in arrival order.
    async fn messages(&mut self, i: usize, n: usize) -> Vec<Got> {
        let mut got = Vec::new();
        while got.len() < n {
            if let (id, Incoming::Message(m)) =
                self.take(i, |x| matches!(x, Incoming::Message(_))).await
            {
                assert!(
                    m.acknowledgement_requested,
                    "a 1:N copy asks to be acknowledged"
                );
                got.push((id, m.message_type.clone(), m.recipients.clone()));
            }
        }
        got
    }

    /// The next `imi.validation` notice for endpoint `i`.
    async fn validation_notice(&mut self, i: usize) -> ValidationDecision {
        let is_notice = |x: &Incoming| matches!(x, Incoming::Validation(_));
        let Incoming::Validation(decision) = self.take(i, is_notice).await.1 else {
            unreachable!()
        };
        decision
    }

    /// No routed message waits for endpoint `i`, nor arrives within `millis`.
    async fn quiet(&mut self, i: usize, millis: u64) {
        let waiting: Vec<_> = self.backlog[i]
            .iter()
            .filter(|x| matches!(x.1, Incoming::Message(_)))
            .collect();
        assert!(waiting.is_empty(), "endpoint {i} got {waiting:?}");
        assert_quiet(&mut self.inboxes[i], millis).await;
    }
}

fn exchange(r: &Receipt) -> ExchangeId {
    ExchangeId::try_from(r.exchange_id.to_string().as_str()).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_chosen_by_the_procedures_rule_and_each_endpoint_gets_one_copy() {
    let mut s = Scene::start(env().await, None).await;

    // All countries (pq-alert): everyone registered but the sender; the
    // Commission is not a recipient of this procedure.
    let alert = one_to_many(
        "pq-alert.send",
        "DE-LAGESO",
        &[],
        &[],
        None,
        example(&s.hub, "pq-alert", "send"),
    );
    s.adapters[DE].send(&alert).await.unwrap();
    let r = s.receipt(DE).await;
    assert_eq!(r.state, "sent");
    assert_eq!(
        r.recipients,
        strings(&[
            "AT-GESUNDHEIT",
            "AT-WKO",
            "DE-AEKNO",
            "FI-VALVIRA",
            "IT-SALUTE"
        ])
    );
    let at = s.messages(AT, 1).await;
    assert_eq!(at[0].1, "pq-alert.send");
    assert_eq!(
        at[0].2,
        strings(&["AT-GESUNDHEIT", "AT-WKO"]),
        "one copy for the endpoint, naming both its authorities"
    );
    assert_eq!(s.messages(FI, 1).await[0].2, strings(&["FI-VALVIRA"]));
    assert_eq!(s.messages(IT, 1).await[0].2, strings(&["IT-SALUTE"]));
    assert_eq!(s.messages(DE, 1).await[0].2, strings(&["DE-AEKNO"]));
    s.quiet(EU, 300).await;
    s.quiet(AT, 300).await;

    // By country (services-alert): the chosen countries plus the Commission.
    let alert = one_to_many(
        "services-alert.broadcast",
        "DE-LAGESO",
        &[],
        &["AT", "IT"],
        None,
        example(&s.hub, "services-alert", "broadcast"),
    );
    s.adapters[DE].send(&alert).await.unwrap();
    let r = s.receipt(DE).await;
    assert_eq!(
        r.recipients,
        strings(&["AT-GESUNDHEIT", "AT-WKO", "EU-COMMISSION", "IT-SALUTE"])
    );
    assert_eq!(s.messages(EU, 1).await[0].2, strings(&["EU-COMMISSION"]));
    assert_eq!(s.messages(AT, 1).await[0].1, "services-alert.broadcast");
    assert_eq!(s.messages(IT, 1).await[0].2, strings(&["IT-SALUTE"]));
    s.quiet(FI, 300).await;

    // Explicit (a discovery notification): exactly the authorities named.
    let note = one_to_many(
        "cultural-objects-discovery-notification.notify",
        "DE-LAGESO",
        &["FI-VALVIRA"],
        &[],
        None,
        example(&s.hub, "cultural-objects-discovery-notification", "notify"),
    );
    s.adapters[DE].send(&note).await.unwrap();
    assert_eq!(s.receipt(DE).await.recipients, strings(&["FI-VALVIRA"]));
    assert_eq!(s.messages(FI, 1).await[0].2, strings(&["FI-VALVIRA"]));
    for i in [AT, IT, EU] {
        s.quiet(i, 200).await;
    }

    // A rule's inputs are checked: countries are needed for a by-country
    // alert and refused for an all-countries one.
    let mut no_countries = alert.clone();
    no_countries.countries.clear();
    s.adapters[DE].send(&no_countries).await.unwrap();
    let rejection = s.rejection(DE).await;
    assert_eq!(rejection.code, RejectionCode::InvalidRecipients);
    assert_eq!(rejection.errors[0].pointer, "/countries");
    let mut with_countries = one_to_many(
        "pq-alert.send",
        "DE-LAGESO",
        &[],
        &["FI"],
        None,
        example(&s.hub, "pq-alert", "send"),
    );
    with_countries.message_id = None;
    s.adapters[DE].send(&with_countries).await.unwrap();
    assert_eq!(s.rejection(DE).await.code, RejectionCode::InvalidRecipients);
    s.finish().await;
}

async fn account(
    env: &TestEnv,
    name: &str,
    role: AccountRole,
    country: Option<&str>,
    area: Option<&str>,
) -> String {
    let pool = env.pool().await;
    let scope = Scope {
        country: country.map(|c| CountryCode::try_from(c).unwrap()),
        area: area.map(|a| AreaCode::try_from(a).unwrap()),
        region: None,
    };
    accounts::create(&pool, name, role, scope).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_coordinator_validates_before_broadcast_and_drafts_are_held() {
    let mut s = Scene::start(env().await, None).await;
    let http = s.hub.http.clone();
    let de_pq = account(
        &s.env,
        "de-pq",
        AccountRole::Coordinator,
        Some("DE"),
        Some("pq"),
    )
    .await;
    let fi_nimic = account(
        &s.env,
        "fi-nimic",
        AccountRole::Coordinator,
        Some("FI"),
        None,
    )
    .await;

    // Only DE's coordinator for the area may turn DE's gate on.
    let (status, _) = call_api(
        &http,
        "PUT",
        "/api/v1/validation-gates/DE/pq",
        Some(&fi_nimic),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call_api(
        &http,
        "PUT",
        "/api/v1/validation-gates/DE/pq",
        Some(&de_pq),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let payload = example(&s.hub, "pq-alert", "send");
    let send = || {
        one_to_many(
            "pq-alert.send",
            "DE-LAGESO",
            &[],
            &[],
            None,
            payload.clone(),
        )
    };
    s.adapters[DE].send(&send()).await.unwrap();
    let r = s.receipt(DE).await;
    assert_eq!(r.state, "awaiting-validation");
    assert!(r.recipients.is_empty(), "held: routed to nobody yet");
    let id = r.exchange_id;
    for i in [AT, FI, IT] {
        s.quiet(i, 300).await;
    }
    let (_, pending) = call_api(&http, "GET", "/api/v1/validations", Some(&de_pq), None).await;
    assert_eq!(pending[0]["exchange_id"], json!(id));
    assert_eq!(pending[0]["recipients"], json!(5));
    for view in ["", "/deliveries"] {
        let (status, _) = call_api(
            &http,
            "GET",
            &format!("/api/v1/exchanges/{id}{view}"),
            Some(&fi_nimic),
            None,
        )
        .await;
        assert_eq!(
            status, 403,
            "a held alert is its originator's country's business"
        );
    }

    let path = format!("/api/v1/exchanges/{id}/validation");
    let (status, _) = call_api(
        &http,
        "POST",
        &path,
        Some(&fi_nimic),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!(
        status, 403,
        "another country's coordinator may not validate"
    );
    let (status, body) = call_api(
        &http,
        "POST",
        &path,
        Some(&de_pq),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!((status, body["state"].clone()), (200, json!("sent")));
    assert_eq!(s.messages(AT, 1).await[0].1, "pq-alert.send");
    assert_eq!(s.messages(FI, 1).await[0].1, "pq-alert.send");
    assert_eq!(s.messages(IT, 1).await[0].1, "pq-alert.send");
    let notice = s.validation_notice(DE).await;
    assert_eq!(
        (notice.decision, notice.state.as_str()),
        (Decision::Approved, "sent")
    );
    let (status, _) = call_api(
        &http,
        "POST",
        &path,
        Some(&de_pq),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!(status, 409, "validated once");

    // Refused: back to draft, the originator is told why, nobody receives it.
    s.adapters[DE].send(&send()).await.unwrap();
    let id = s.receipt(DE).await.exchange_id;
    let path = format!("/api/v1/exchanges/{id}/validation");
    let refusal = json!({"approve": false, "reason": "Name the court, not the ministry."});
    let (status, body) = call_api(&http, "POST", &path, Some(&de_pq), Some(refusal)).await;
    assert_eq!((status, body["state"].clone()), (200, json!("draft")));
    let notice = s.validation_notice(DE).await;
    assert_eq!(notice.decision, Decision::Refused);
    assert_eq!(
        notice.reason.as_deref(),
        Some("Name the court, not the ministry.")
    );
    for i in [AT, FI, IT] {
        s.quiet(i, 300).await;
    }

    // Without the gate: a draft is held until submitted; then every
    // recipient gets the draft and the submission, in order.
    let (status, _) = call_api(
        &http,
        "DELETE",
        "/api/v1/validation-gates/DE/pq",
        Some(&de_pq),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut draft = send();
    draft.message_type = "pq-alert.draft".try_into().unwrap();
    s.adapters[DE].send(&draft).await.unwrap();
    let r = s.receipt(DE).await;
    assert_eq!((r.state.as_str(), r.recipients.len()), ("draft", 0));
    for i in [AT, FI, IT] {
        s.quiet(i, 300).await;
    }
    let submit = one_to_many(
        "pq-alert.submit",
        "DE-LAGESO",
        &[],
        &[],
        Some(exchange(&r)),
        json!({}),
    );
    s.adapters[DE].send(&submit).await.unwrap();
    assert_eq!(s.receipt(DE).await.state, "sent");
    for i in [AT, FI, IT] {
        let got = s.messages(i, 2).await;
        let types: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
        assert_eq!(types, ["pq-alert.draft", "pq-alert.submit"]);
    }

    // After a crash the relay would re-publish that release in the same
    // order: the draft's copies before the submission's. (Read with the hub
    // stopped, so its own relay does not take the rows first.)
    let released = exchange(&r).as_uuid();
    let Scene {
        env, hub, adapters, ..
    } = s;
    for a in adapters {
        a.close().await;
    }
    hub.stop().await;
    let pool = env.pool().await;
    sqlx::query(
        "UPDATE batches SET published_at = NULL, created_at = now() - interval '1 hour'
         WHERE id IN (SELECT batch_id FROM outbox WHERE exchange_id = $1)",
    )
    .bind(released)
    .execute(&pool)
    .await
    .unwrap();
    let at_endpoint = env.endpoints[AT].id.clone();
    let rows = imi_hub::inspect::relay_queue(&pool, 0.0, 50).await.unwrap();
    let relayed: Vec<&str> = rows
        .iter()
        .filter(|row| row.exchange_id == Some(released) && row.endpoint == at_endpoint)
        .map(|row| row.message_type.as_str())
        .collect();
    assert_eq!(relayed, ["pq-alert.draft", "pq-alert.submit"]);
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_every_recipient_including_disseminated_ones() {
    let mut s = Scene::start(env().await, None).await;
    // To Italy by country, and to AT-GESUNDHEIT by name; plus the Commission.
    let alert = one_to_many(
        "services-alert.broadcast",
        "DE-LAGESO",
        &["AT-GESUNDHEIT"],
        &["IT"],
        None,
        example(&s.hub, "services-alert", "broadcast"),
    );
    s.adapters[DE].send(&alert).await.unwrap();
    let r = s.receipt(DE).await;
    assert_eq!(
        r.recipients,
        strings(&["AT-GESUNDHEIT", "EU-COMMISSION", "IT-SALUTE"])
    );
    let ex = exchange(&r);
    let broadcast_id = s.messages(AT, 1).await[0].0.clone();
    s.messages(IT, 1).await;
    s.messages(EU, 1).await;

    // AT-GESUNDHEIT (the receiving coordinator) passes it on to AT-WKO: the
    // newcomer gets the alert so far, the originator learns who was added.
    let spread = one_to_many(
        "services-alert.disseminate",
        "AT-GESUNDHEIT",
        &["AT-WKO"],
        &[],
        Some(ex),
        json!({}),
    );
    s.adapters[AT].send(&spread).await.unwrap();
    let got = s.messages(AT, 2).await;
    assert_eq!(got[0].1, "services-alert.broadcast");
    assert_eq!(got[0].2, strings(&["AT-WKO"]));
    assert_ne!(
        got[0].0, broadcast_id,
        "the newcomer's copy has an id of its own"
    );
    assert_eq!(
        (got[1].1.as_str(), got[1].2.clone()),
        ("services-alert.disseminate", strings(&["AT-WKO"]))
    );
    assert_eq!(s.messages(DE, 1).await[0].1, "services-alert.disseminate");
    // Only within the disseminator's country.
    let abroad = one_to_many(
        "services-alert.disseminate",
        "AT-GESUNDHEIT",
        &["FI-VALVIRA"],
        &[],
        Some(ex),
        json!({}),
    );
    s.adapters[AT].send(&abroad).await.unwrap();
    assert_eq!(s.rejection(AT).await.code, RejectionCode::InvalidRecipients);

    // Modify, a recipient's comment, close, modify after closure: each
    // reaches every other party, once.
    let steps = [
        (
            "DE-LAGESO",
            DE,
            "services-alert.modify",
            example(&s.hub, "services-alert", "modify"),
        ),
        (
            "IT-SALUTE",
            IT,
            "services-alert.comment",
            example(&s.hub, "services-alert", "comment"),
        ),
        (
            "DE-LAGESO",
            DE,
            "services-alert.close",
            example(&s.hub, "services-alert", "close"),
        ),
        (
            "DE-LAGESO",
            DE,
            "services-alert.modify-after-closure",
            example(&s.hub, "services-alert", "modify-after-closure"),
        ),
    ];
    for (sender, from, message_type, payload) in steps {
        let m = one_to_many(message_type, sender, &[], &[], Some(ex), payload);
        s.adapters[from].send(&m).await.unwrap();
        for to in [DE, AT, IT, EU] {
            if to == from {
                continue;
            }
            let got = s.messages(to, 1).await;
            assert_eq!(got[0].1, message_type, "endpoint {to}");
            if to == AT {
                assert_eq!(got[0].2, strings(&["AT-GESUNDHEIT", "AT-WKO"]));
            }
        }
    }
    s.quiet(FI, 300).await;
    // Withdrawal is not possible after closure (the catalogue's workflow).
    let late = one_to_many(
        "services-alert.withdraw",
        "DE-LAGESO",
        &[],
        &[],
        Some(ex),
        example(&s.hub, "services-alert", "withdraw"),
    );
    s.adapters[DE].send(&late).await.unwrap();
    assert_eq!(
        s.rejection(DE).await.code,
        RejectionCode::ActionNotAllowedInState
    );
    // Someone who is not a party cannot act on it.
    let outsider = one_to_many(
        "services-alert.comment",
        "FI-VALVIRA",
        &[],
        &[],
        Some(ex),
        example(&s.hub, "services-alert", "comment"),
    );
    s.adapters[FI].send(&outsider).await.unwrap();
    assert_eq!(
        s.rejection(FI).await.code,
        RejectionCode::ActionNotAllowedForRole
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_are_tracked_per_recipient_and_the_silent_are_reminded() {
    let clock = Arc::new(ManualClock::starting_now());
    let mut s = Scene::start(env().await, Some(clock.clone())).await;
    let http = s.hub.http.clone();
    let operator = account(&s.env, "helpdesk", AccountRole::Operator, None, None).await;
    let at_nimic = account(
        &s.env,
        "at-nimic",
        AccountRole::Coordinator,
        Some("AT"),
        None,
    )
    .await;

    let mut payload = example(&s.hub, "pq-alert", "send");
    payload["decision_date"] = json!((chrono::Utc::now() - chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string());
    let alert = one_to_many("pq-alert.send", "DE-LAGESO", &[], &[], None, payload);
    s.adapters[DE].send(&alert).await.unwrap();
    let ex = s.receipt(DE).await.exchange_id;
    let at_copy = s.messages(AT, 1).await.remove(0).0;
    let fi_copy = s.messages(FI, 1).await.remove(0).0;
    s.messages(IT, 1).await;
    s.messages(DE, 1).await; // DE-AEKNO's copy

    // AT acknowledges for both its authorities, FI for its one; the originator is told.
    let uuid = |s: &str| uuid::Uuid::parse_str(s).unwrap();
    s.adapters[AT]
        .acknowledge(uuid(&at_copy), Some(&ex.to_string()), &[])
        .await
        .unwrap();
    s.adapters[FI]
        .acknowledge(
            uuid(&fi_copy),
            Some(&ex.to_string()),
            &[AuthorityId::try_from("FI-VALVIRA").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(s.receipt(AT).await.message_type, "imi.acknowledgement");
    let first = s.receipt(FI).await;
    assert_eq!(first.message_type, "imi.acknowledgement");
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 3 {
        if let Incoming::Acknowledgements(batch) = s
            .take(DE, |x| matches!(x, Incoming::Acknowledgements(_)))
            .await
            .1
        {
            acknowledged.extend(batch.acknowledgements.into_iter().map(|a| a.authority));
        }
    }
    acknowledged.sort();
    assert_eq!(
        acknowledged,
        strings(&["AT-GESUNDHEIT", "AT-WKO", "FI-VALVIRA"])
    );
    // Acknowledging again changes nothing and tells the originator nothing
    // new; its receipt says when the copy was acknowledged, as the first did.
    s.adapters[FI]
        .acknowledge(uuid(&fi_copy), None, &[])
        .await
        .unwrap();
    let again = s.receipt(FI).await;
    assert_eq!(again.message_type, "imi.acknowledgement");
    assert_eq!(again.accepted_at, first.accepted_at);
    s.quiet(DE, 300).await;
    // A copy the endpoint never received (another endpoint's) is refused.
    s.adapters[IT]
        .acknowledge(uuid(&at_copy), None, &[])
        .await
        .unwrap();
    assert_eq!(s.rejection(IT).await.code, RejectionCode::UnknownDelivery);
    // A malformed acknowledgement is refused, kept for inspection, and the
    // hub goes on.
    let properties = imi_broker::Properties {
        message_id: Some(uuid::Uuid::new_v4().to_string()),
        message_type: Some("imi.acknowledgement".into()),
        user_id: Some(s.env.endpoints[IT].id.clone()),
        ..Default::default()
    };
    s.adapters[IT]
        .send_raw(properties, br#"{"copy": 1}"#.to_vec())
        .await
        .unwrap();
    let rejection = s.rejection(IT).await;
    assert_eq!(rejection.code, RejectionCode::InvalidEnvelope);
    let pool = s.env.pool().await;
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rejected_messages WHERE message_type = 'imi.acknowledgement'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept, 2, "the unknown copy and the malformed one are kept");
    pool.close().await;

    // Who has and has not acknowledged: everything for the operator, and an
    // AT coordinator sees its country's recipients only.
    let path = format!("/api/v1/exchanges/{ex}/deliveries");
    let (status, view) = call_api(&http, "GET", &path, Some(&operator), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["counts"],
        json!({"queued": 0, "routed": 2, "acknowledged": 3})
    );
    let states: Vec<(String, String)> = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["authority"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&("IT-SALUTE".into(), "routed".into())));
    assert!(states.contains(&("AT-WKO".into(), "acknowledged".into())));
    assert_eq!(view["recipients"].as_array().unwrap().len(), 5);
    // The alert was sent 10 days after the decision: late (due within 3).
    assert_eq!(view["deadlines"][0]["deadline"], "alert-sent");
    assert_eq!(view["deadlines"][0]["late"], true);
    let (_, at_view) = call_api(&http, "GET", &path, Some(&at_nimic), None).await;
    assert_eq!(at_view["recipients"], json!(["AT-GESUNDHEIT", "AT-WKO"]));
    assert_eq!(at_view["deliveries"].as_array().unwrap().len(), 2);

    // A day later the two that are silent get a reminder, once.
    assert_eq!(
        s.hub.reminders.check_once().await.unwrap(),
        0,
        "not yet due"
    );
    clock.advance(chrono::Duration::hours(25));
    assert_eq!(s.hub.reminders.check_once().await.unwrap(), 2);
    for (i, authority) in [(IT, "IT-SALUTE"), (DE, "DE-AEKNO")] {
        let Incoming::Deadline(n) = s.take(i, |x| matches!(x, Incoming::Deadline(_))).await.1
        else {
            unreachable!()
        };
        assert_eq!(
            (n.deadline.as_str(), n.kind.as_str()),
            ("acknowledge", "reminder")
        );
        assert_eq!(n.authority, authority);
        assert_eq!(n.exchange_id, ex);
    }
    s.quiet(AT, 300).await;
    assert_eq!(s.hub.reminders.check_once().await.unwrap(), 0, "once");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_sent_within_three_days_of_the_decision_is_not_late() {
    let mut s = Scene::start(env().await, None).await;
    let operator = account(&s.env, "helpdesk", AccountRole::Operator, None, None).await;
    let mut payload = example(&s.hub, "pq-alert", "send");
    payload["decision_date"] = json!(chrono::Utc::now().format("%Y-%m-%d").to_string());
    let alert = one_to_many("pq-alert.send", "DE-LAGESO", &[], &[], None, payload);
    s.adapters[DE].send(&alert).await.unwrap();
    let ex = s.receipt(DE).await.exchange_id;
    let (_, view) = call_api(
        &s.hub.http,
        "GET",
        &format!("/api/v1/exchanges/{ex}/deliveries"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(view["deadlines"][0]["late"], false, "{view}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_reaches_every_recipient_once() {
    let mut s = Scene::start(env().await, None).await;
    let alert = one_to_many(
        "pq-alert.send",
        "DE-LAGESO",
        &[],
        &[],
        None,
        example(&s.hub, "pq-alert", "send"),
    );
    s.adapters[DE].send(&alert).await.unwrap();
    let ex = exchange(&s.receipt(DE).await);
    for i in [AT, FI, IT, DE] {
        assert_eq!(s.messages(i, 1).await[0].1, "pq-alert.send");
    }
    let withdraw = one_to_many(
        "pq-alert.withdraw",
        "DE-LAGESO",
        &[],
        &[],
        Some(ex),
        example(&s.hub, "pq-alert", "withdraw"),
    );
    s.adapters[DE].send(&withdraw).await.unwrap();
    assert_eq!(s.receipt(DE).await.state, "withdrawn");
    for (i, authorities) in [
        (AT, vec!["AT-GESUNDHEIT", "AT-WKO"]),
        (FI, vec!["FI-VALVIRA"]),
        (IT, vec!["IT-SALUTE"]),
        (DE, vec!["DE-AEKNO"]),
    ] {
        let got = s.messages(i, 1).await;
        assert_eq!(got[0].1, "pq-alert.withdraw");
        assert_eq!(got[0].2, strings(&authorities));
        s.quiet(i, 200).await;
    }
    s.quiet(EU, 200).await;
    // Nothing can follow a withdrawal but what the catalogue allows (nothing).
    let modify = one_to_many(
        "pq-alert.modify",
        "DE-LAGESO",
        &[],
        &[],
        Some(ex),
        example(&s.hub, "pq-alert", "modify"),
    );
    s.adapters[DE].send(&modify).await.unwrap();
    assert_eq!(
        s.rejection(DE).await.code,
        RejectionCode::ActionNotAllowedInState
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_closes_when_its_restriction_expires_and_its_data_go_three_days_later() {
    let clock = Arc::new(ManualClock::starting_now());
    let mut s = Scene::start(env().await, Some(clock.clone())).await;
    let operator = account(&s.env, "helpdesk", AccountRole::Operator, None, None).await;
    let today = clock.now().date_naive();
    let mut payload = example(&s.hub, "pq-alert", "send");
    payload["restriction_end_date"] = json!((today + chrono::Duration::days(1)).to_string());
    payload["free_text"] = json!("Told us by phone on Monday; the lawyer is Ms Berg.");
    let alert = one_to_many("pq-alert.send", "DE-LAGESO", &[], &[], None, payload);
    s.adapters[DE].send(&alert).await.unwrap();
    let ex = s.receipt(DE).await.exchange_id;

    // Still in force: nothing closes.
    assert_eq!(s.hub.retention.run_once().await.unwrap().expired, 0);
    // The restriction ended yesterday: the alert is closed at the end of its
    // last day, and its data are due for deletion 3 days after, not 36 months.
    clock.advance(chrono::Duration::days(2));
    let outcome = s.hub.retention.run_once().await.unwrap();
    assert_eq!((outcome.expired, outcome.erased), (1, 0));
    let (_, view) = call_api(
        &s.hub.http,
        "GET",
        &format!("/api/v1/exchanges/{ex}"),
        Some(&operator),
        None,
    )
    .await;
    let closed = (today + chrono::Duration::days(2))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(
        view["closed_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        closed,
        "{view}"
    );
    let delete_at: chrono::DateTime<chrono::Utc> = view["retention"]["delete_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(delete_at, closed + chrono::Duration::days(3));

    clock.advance(chrono::Duration::days(3) + chrono::Duration::hours(1));
    let outcome = s.hub.retention.run_once().await.unwrap();
    assert_eq!(outcome.erased, 1);
    let pool = s.env.pool().await;
    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages WHERE exchange_id = $1")
        .bind(ex)
        .fetch_one(&pool)
        .await
        .unwrap();
    let raw = imi_hub::at_rest::read_stored(&raw).unwrap();
    let payload = &serde_json::from_slice::<serde_json::Value>(&raw).unwrap()["payload"];
    assert!(
        payload["professional"].get("family_name").is_none(),
        "{payload}"
    );
    assert!(
        payload.get("free_text").is_none(),
        "free text is personal data by rule: {payload}"
    );
    assert_eq!(payload["profession"], "PQ-DOCTOR", "coded values stay");
    let erasures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'erase_personal_data' AND detail -> 'exchanges' ? $1",
    )
    .bind(ex.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(erasures, 1, "the erasure is in the audit log");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_extended_after_its_expiry_is_open_again_and_keeps_its_data() {
    let clock = Arc::new(ManualClock::starting_now());
    let mut s = Scene::start(env().await, Some(clock.clone())).await;
    let today = clock.now().date_naive();
    let mut payload = example(&s.hub, "pq-alert", "send");
    payload["restriction_end_date"] = json!((today + chrono::Duration::days(1)).to_string());
    let alert = one_to_many("pq-alert.send", "DE-LAGESO", &[], &[], None, payload);
    s.adapters[DE].send(&alert).await.unwrap();
    let receipt = s.receipt(DE).await;
    clock.advance(chrono::Duration::days(2));
    assert_eq!(s.hub.retention.run_once().await.unwrap().expired, 1);

    // The court extends the restriction: the sender modifies the alert.
    let mut modify = example(&s.hub, "pq-alert", "modify");
    modify["restriction_end_date"] = json!((today + chrono::Duration::days(400)).to_string());
    let follow_up = one_to_many(
        "pq-alert.modify",
        "DE-LAGESO",
        &[],
        &[],
        Some(exchange(&receipt)),
        modify,
    );
    s.adapters[DE].send(&follow_up).await.unwrap();
    s.receipt(DE).await;
    s.hub.retention.run_once().await.unwrap();
    let pool = s.env.pool().await;
    let closed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT closed_at FROM exchanges WHERE id = $1")
            .bind(receipt.exchange_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(closed, None, "open again: the restriction runs on");

    // Days later its data are still there.
    clock.advance(chrono::Duration::days(4));
    assert_eq!(s.hub.retention.run_once().await.unwrap().erased, 0);
    s.finish().await;
}
