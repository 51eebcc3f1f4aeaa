//! Each endpoint's broker user may do exactly what it needs: publish to the
//! ingress exchange, read its own inbox, configure nothing. Checked against
//! the real RabbitMQ permissions the hub provisions.

use imi_schemas::protocol::{inbox_queue, DELIVER_EXCHANGE};
use imi_tests::{finish, TestEnv, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_reads_only_its_own_inbox_writes_only_to_ingress_and_configures_nothing() {
    let World {
        env, hub, fi, de, ..
    } = World::start(TestEnv::new().await).await;
    let own = inbox_queue(&env.endpoints[0].id);
    let other = inbox_queue(&env.endpoints[1].id);

    fi.probe_consume(&own)
        .await
        .expect("an endpoint may consume its own inbox");
    let refused = fi
        .probe_consume(&other)
        .await
        .expect_err("another endpoint's inbox must be refused");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");

    let publish = fi
        .publish_to(DELIVER_EXCHANGE, &env.endpoints[1].id, b"{}".to_vec())
        .await;
    let refused = publish.expect_err("publishing to the delivery exchange must be refused");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");

    let refused = fi
        .probe_declare("sneaky-queue")
        .await
        .expect_err("declaring must be refused");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");
    let refused = fi
        .probe_declare(&own)
        .await
        .expect_err("even re-declaring its own inbox is configuring");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");

    // Nor bind anything: not its inbox to the delivery exchange under another
    // endpoint's key (that would copy another endpoint's mail), nor anything else.
    let refused = fi
        .probe_bind(&own, DELIVER_EXCHANGE, &env.endpoints[1].id)
        .await
        .expect_err("binding must be refused");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");

    finish(env, hub, vec![fi, de]).await;
}
