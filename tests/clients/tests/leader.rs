//! Leader election against a real API server: of two candidates for one Lease exactly one
//! leads, and when it stops the other takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use slipway_client_tests::{Server, eventually};
use slipway_controllers::leader::Election;
use tokio_util::sync::CancellationToken;

/// A candidate whose leadership is visible: `leading` counts the candidates leading now.
fn candidate(
    server: &Server,
    identity: &str,
    leading: Arc<AtomicUsize>,
    led: Arc<std::sync::Mutex<Vec<String>>>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let election = Election {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(100),
        ..Election::new("test-lease", identity.to_owned())
    };
    let stop = CancellationToken::new();
    let client = server.client.clone();
    let name = identity.to_owned();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            election
                .run(client, stop, move |term| {
                    let leading = Arc::clone(&leading);
                    let led = Arc::clone(&led);
                    let name = name.clone();
                    async move {
                        leading.fetch_add(1, Ordering::SeqCst);
                        led.lock().unwrap().push(name);
                        term.cancelled().await;
                        leading.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    }
                })
                .await
                .unwrap();
        }
    });
    (stop, task)
}

#[tokio::test]
async fn one_leads_and_the_other_takes_over() {
    let server = Server::start().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let led = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop_a, a) = candidate(&server, "a", leading.clone(), led.clone());
    let (stop_b, b) = candidate(&server, "b", leading.clone(), led.clone());

    eventually("a leader", async || {
        (leading.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // Several renewals later, still exactly one.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(leading.load(Ordering::SeqCst), 1, "exactly one leads");
    }
    let first = led.lock().unwrap()[0].clone();
    let (stop_first, first_task, stop_other, other_task) = if first == "a" {
        (stop_a, a, stop_b, b)
    } else {
        (stop_b, b, stop_a, a)
    };
    stop_first.cancel();
    first_task.await.unwrap();
    eventually("the other candidate leading", async || {
        let led = led.lock().unwrap().clone();
        (led.len() == 2 && led[1] != first && leading.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // Each term is announced on the Lease, as client-go's `LeaderElection` Event.
    let events: Api<Event> = Api::namespaced(server.client.clone(), "kube-system");
    let other = if first == "a" { "b" } else { "a" };
    for identity in [first.as_str(), other] {
        eventually(&format!("an Event for {identity}"), async || {
            let events = events.list(&ListParams::default()).await.unwrap().items;
            events
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("LeaderElection")
                        && e.involved_object.name.as_deref() == Some("test-lease")
                        && e.message.as_deref() == Some(&format!("{identity} became leader"))
                })
                .then_some(())
        })
        .await;
    }
    stop_other.cancel();
    other_task.await.unwrap();
    assert_eq!(leading.load(Ordering::SeqCst), 0);
}
