//! Transport security on the real broker: RabbitMQ listens with TLS on
//! 5671 (scripts/ensure-tls.sh, a development CA). The hub and adapters
//! verify the broker's certificate; an endpoint may log in with a client
//! certificate instead of a password (EXTERNAL: the certificate's common
//! name is its broker user) and can then act as that endpoint only; a client
//! that does not trust the CA is refused; the console serves HTTPS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use imi_adapters::{Adapter, EndpointConfig, EndpointTls};
use imi_tests::{management_config, next_receipt, open_inbox, request_to_de, TestEnv};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const AMQPS: &str = "amqps://127.0.0.1:5671";
const PKCS12_PASSWORD: &str = "test-only-password";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The development CA's folder, set up once per test process.
fn tls_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg(workspace().join("scripts/ensure-tls.sh"))
            .output()
            .expect("ensure-tls.sh runs");
        assert!(
            out.status.success(),
            "ensure-tls.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A client certificate for `endpoint`, signed by the development CA.
fn client_certificate(env: &TestEnv, endpoint: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(workspace().join("scripts/dev-client-cert.sh"))
        .args([endpoint, &env.dir.display().to_string(), PKCS12_PASSWORD])
        .env("IMI_TLS_DIR", tls_dir())
        .output()
        .expect("dev-client-cert.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn over_tls(env: &TestEnv, endpoint: usize, tls: EndpointTls) -> EndpointConfig {
    EndpointConfig {
        amqp_url: AMQPS.into(),
        tls: Some(tls),
        ..env.endpoint_config(endpoint)
    }
}

/// What the management API says of the vhost's connections: (user, TLS,
/// mechanism).
async fn connections(env: &TestEnv) -> Vec<(String, bool, String)> {
    let m = management_config();
    let url = format!("{}/api/vhosts/{}/connections", m.url, env.vhost);
    for _ in 0..50 {
        let list: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .basic_auth(
                &m.user,
                Some(secrecy::ExposeSecret::expose_secret(&m.password)),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows: Vec<(String, bool, String)> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ssl"].is_boolean())
            .map(|c| {
                (
                    c["user"].as_str().unwrap_or_default().to_owned(),
                    c["ssl"].as_bool().unwrap(),
                    c["auth_mechanism"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if rows.len() >= 3 {
            return rows;
        }
        // The management API samples connections every few seconds.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the management API lists no connections of {}", env.vhost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_and_adapters_exchange_over_amqps_one_with_a_client_certificate() {
    let mut env = TestEnv::new().await;
    env.config.amqp.url = "amqps://guest:guest@127.0.0.1:5671".to_owned().into();
    env.config.amqp.ca_file = Some(tls_dir().join("ca.pem"));
    let hub = env.start_hub().await;
    let ca = Some(tls_dir().join("ca.pem"));
    // Finland logs in with its password, over TLS.
    let fi = Adapter::connect(&over_tls(
        &env,
        0,
        EndpointTls {
            ca_file: ca.clone(),
            client_certificate: None,
        },
    ))
    .await
    .expect("FI connects over TLS");
    // Germany with its certificate: the password given is wrong, and unused.
    let de_endpoint = env.endpoints[1].id.clone();
    let mut de_config = over_tls(
        &env,
        1,
        EndpointTls {
            ca_file: ca,
            client_certificate: Some((
                client_certificate(&env, &de_endpoint),
                PKCS12_PASSWORD.into(),
            )),
        },
    );
    de_config.password = "not-the-password".into();
    let de = Adapter::connect(&de_config)
        .await
        .expect("DE connects with its certificate");
    let (mut fi_inbox, _a) = open_inbox(&fi);
    let (mut de_inbox, _b) = open_inbox(&de);
    fi.send(&request_to_de()).await.unwrap();
    let receipt = next_receipt(&mut fi_inbox).await;
    let (_, exchange, incoming) = imi_tests::next_acked(&mut de_inbox, 20).await;
    assert_eq!(exchange, Some(receipt.exchange_id.to_string()));
    assert!(
        matches!(&incoming, imi_adapters::Incoming::Message(m) if m.sender == "FI-VALVIRA"),
        "DE got {incoming:?}"
    );
    // The broker says so: every connection of the vhost is TLS; Germany's
    // logged in by certificate, as its endpoint.
    let seen = connections(&env).await;
    assert!(seen.iter().all(|(_, ssl, _)| *ssl), "{seen:?}");
    assert!(
        seen.iter()
            .any(|(user, _, mechanism)| user == &de_endpoint && mechanism == "EXTERNAL"),
        "{seen:?}"
    );
    fi.close().await;
    de.close().await;
    hub.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let env = TestEnv::new().await;
    let _ = tls_dir();
    // The system's roots do not hold the development CA.
    let untrusting = over_tls(&env, 0, EndpointTls::default());
    assert!(
        Adapter::connect_within(&untrusting, Duration::from_secs(3))
            .await
            .is_err(),
        "connected without trusting the broker's CA"
    );
    // Nor does another CA.
    let other = env.dir.join("other-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            &env.dir.join("other-ca.key").display().to_string(),
        ])
        .args([
            "-out",
            &other.display().to_string(),
            "-subj",
            "/CN=Another CA",
            "-days",
            "2",
        ])
        .output()
        .unwrap();
    assert!(made.status.success());
    let wrong_ca = over_tls(
        &env,
        0,
        EndpointTls {
            ca_file: Some(other),
            client_certificate: None,
        },
    );
    assert!(Adapter::connect_within(&wrong_ca, Duration::from_secs(3))
        .await
        .is_err());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_endpoint_cannot_act_for_this_one() {
    let env = TestEnv::new().await;
    let hub = env.start_hub().await;
    let fi_endpoint = env.endpoints[0].id.clone();
    let de_endpoint = env.endpoints[1].id.clone();
    let de_p12 = std::fs::read(client_certificate(&env, &de_endpoint)).unwrap();
    let tls = || OwnedTLSConfig {
        identity: Some(OwnedIdentity {
            der: de_p12.clone(),
            password: PKCS12_PASSWORD.into(),
        }),
        cert_chain: Some(std::fs::read_to_string(tls_dir().join("ca.pem")).unwrap()),
    };
    // Germany's certificate, asking to be Finland: the broker logs it in
    // as Germany (the certificate's name), whatever the URL says.
    let url = format!(
        "amqps://{fi_endpoint}@127.0.0.1:5671/{}?auth_mechanism=external",
        env.vhost
    );
    let properties = || {
        ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
    };
    let conn = Connection::connect_with_config(&url, properties(), tls())
        .await
        .expect("the certificate logs in");
    // Finland's inbox is not Germany's to read.
    let channel = conn.create_channel().await.unwrap();
    let consumed = channel
        .basic_consume(
            &imi_schemas::protocol::inbox_queue(&fi_endpoint),
            "thief",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(
        consumed.is_err(),
        "Germany's certificate reads Finland's inbox"
    );
    // Nor may it send as Finland: the broker refuses a user_id that is not
    // the connection's.
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let body = serde_json::to_vec(&serde_json::json!({"sender": "FI-VALVIRA"})).unwrap();
    let published = async {
        channel
            .basic_publish(
                imi_schemas::protocol::INGRESS_EXCHANGE,
                "",
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_user_id(ShortString::from(fi_endpoint.clone()))
                    .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string())),
            )
            .await?
            .await
    }
    .await;
    let refused = match published {
        Err(_) => true,
        Ok(confirmation) => confirmation.is_nack() || !channel.status().connected(),
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        refused || !channel.status().connected(),
        "a message with Finland's user_id was taken from Germany's connection"
    );
    // The connection is Germany's, by certificate.
    let mut consumer = {
        let channel = conn.create_channel().await.unwrap();
        channel
            .basic_consume(
                &imi_schemas::protocol::inbox_queue(&de_endpoint),
                "own",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("Germany reads its own inbox")
    };
    let _ = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await;
    let _ = conn.close(200, "done").await;
    hub.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_api_serve_https_with_the_configured_certificate() {
    let mut env = TestEnv::new().await;
    env.config.http.tls_cert_file = Some(tls_dir().join("server.pem"));
    env.config.http.tls_key_file = Some(tls_dir().join("server.key"));
    let hub = env.start_hub().await;
    let https = hub.http.replace("http://", "https://");
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(tls_dir().join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let ready = client.get(format!("{https}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let login = client
        .get(format!("{https}/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    // Served over HTTPS, the console's cookies are Secure.
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(cookie.iter().all(|c| c.contains("Secure")), "{cookie:?}");
    // Plain HTTP gets no page, and a client without the CA is refused.
    assert!(reqwest::get(format!("{}/readyz", hub.http)).await.is_err());
    assert!(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
        .get(format!("{https}/readyz"))
        .send()
        .await
        .is_err());
    hub.stop().await;
    env.cleanup().await;
}
