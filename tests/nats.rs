//! The real `nats-server` of the cluster-mode tests (`serve_test_support::NatsServer`) and the
//! async-nats client working together: request/reply, recovery after a server restart, and
//! credentials. If these fail, so will every cluster test; start here.

use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use futures::StreamExt;
use serve_test_support::{NatsOptions, NatsServer, PATIENCE};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Answers every request on `subject` with its own payload, prefixed `echo: `. The subscription is
/// on the server when this returns, so a request from any client finds it.
async fn serve_echo(client: &Client, subject: &str) -> tokio::task::JoinHandle<()> {
    let mut requests = client.subscribe(subject.to_owned()).await.unwrap();
    let echo = {
        let client = client.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let reply = request.reply.expect("a request has a reply subject");
                let mut payload = b"echo: ".to_vec();
                payload.extend_from_slice(&request.payload);
                client.publish(reply, payload.into()).await.unwrap();
            }
        })
    };
    expect_subscribed(client, subject).await;
    echo
}

/// Returns once the server has `client`'s subscription to `subject`, by a request from `client`
/// itself: the server handles one connection's messages in order, so an answer proves the
/// subscription came first. (async-nats' `flush` only writes the socket; it is no round trip, and
/// the server handles different connections concurrently.)
async fn expect_subscribed(client: &Client, subject: &str) {
    assert_eq!(ask(client, subject, "ping").await, "echo: ping");
}

/// Sends one request and returns the reply as text; fails the test after [`PATIENCE`].
async fn ask(client: &Client, subject: &str, payload: &str) -> String {
    let reply = timeout(
        PATIENCE,
        client.request(subject.to_owned(), payload.to_owned().into()),
    )
    .await
    .expect("the reply comes within PATIENCE")
    .expect("the request is answered");
    String::from_utf8(reply.payload.to_vec()).unwrap()
}

/// Options that report the client's connection events on the returned channel.
fn with_events(options: ConnectOptions) -> (ConnectOptions, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = options.event_callback(move |event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(event);
        }
    });
    (options, rx)
}

/// Waits for `wanted` among the client's events (skipping others); fails after [`PATIENCE`].
async fn expect_event(events: &mut mpsc::UnboundedReceiver<Event>, wanted: Event, who: &str) {
    let found = timeout(PATIENCE, async {
        while let Some(event) = events.recv().await {
            if std::mem::discriminant(&event) == std::mem::discriminant(&wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{who} never saw `{wanted}`");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_answered_by_a_responder_subscription() {
    let server = NatsServer::start();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

    let responder = async_nats::connect(server.url()).await.unwrap();
    let _echo = serve_echo(&responder, "greet").await;
    let caller = async_nats::connect(server.url()).await.unwrap();

    assert_eq!(ask(&caller, "greet", "hello").await, "echo: hello");
    assert_eq!(ask(&caller, "greet", "again").await, "echo: again");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_the_url_is_the_same_and_clients_reconnect_on_their_own() {
    let mut server = NatsServer::start();
    let url = server.url();
    let (options, mut responder_events) = with_events(ConnectOptions::new());
    let responder = options.connect(&url).await.unwrap();
    let _echo = serve_echo(&responder, "greet").await;
    let (options, mut caller_events) = with_events(ConnectOptions::new());
    let caller = options.connect(&url).await.unwrap();
    assert_eq!(ask(&caller, "greet", "before").await, "echo: before");

    // `restart` blocks until the new server is ready; keep the runtime's other worker free.
    tokio::task::block_in_place(|| server.restart());
    assert_eq!(server.url(), url);

    for (events, who) in [
        (&mut responder_events, "the responder"),
        (&mut caller_events, "the caller"),
    ] {
        expect_event(events, Event::Disconnected, who).await;
        expect_event(events, Event::Connected, who).await;
    }
    // The responder re-subscribed as it reconnected; wait until the server has it.
    expect_subscribed(&responder, "greet").await;
    assert_eq!(ask(&caller, "greet", "after").await, "echo: after");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_server_refuses_connections_until_restarted() {
    let mut server = NatsServer::start();
    server.stop();
    let refused = timeout(PATIENCE, async_nats::connect(server.url()))
        .await
        .expect("connecting fails within PATIENCE")
        .expect_err("no server is listening");
    assert_eq!(refused.kind(), ConnectErrorKind::Io, "{refused}");

    tokio::task::block_in_place(|| server.restart());
    let client = async_nats::connect(server.url()).await.unwrap();
    let _echo = serve_echo(&client, "greet").await;
    assert_eq!(ask(&client, "greet", "back").await, "echo: back");
}

#[test]
fn dropping_the_server_kills_it() {
    let server = NatsServer::start();
    let port = server.port();
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server listens");
    drop(server);
    // Drop waited for the process to exit, so its listening socket is already closed.
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .expect_err("nothing listens after the drop");
}

/// Connects with `options`, bounded by [`PATIENCE`].
async fn connect(
    server: &NatsServer,
    options: ConnectOptions,
) -> Result<Client, async_nats::ConnectError> {
    timeout(PATIENCE, options.connect(server.url()))
        .await
        .expect("connecting succeeds or fails within PATIENCE")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_and_the_right_one_accepted() {
    let server = NatsServer::start_with(NatsOptions::new().user("a", "b"));

    let wrong = ConnectOptions::new().user_and_password("a".into(), "not-b".into());
    let refused = connect(&server, wrong).await.expect_err("a wrong password");
    assert_eq!(
        refused.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{refused}"
    );
    assert!(
        refused.to_string().contains("authorization violation"),
        "{refused}"
    );
    let anonymous = connect(&server, ConnectOptions::new())
        .await
        .expect_err("no credentials");
    assert_eq!(
        anonymous.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{anonymous}"
    );

    let right = ConnectOptions::new().user_and_password("a".into(), "b".into());
    let client = connect(&server, right).await.expect("the right password");
    let _echo = serve_echo(&client, "greet").await;
    assert_eq!(ask(&client, "greet", "in").await, "echo: in");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_and_the_right_one_accepted() {
    let server = NatsServer::start_with(NatsOptions::new().token("s3cret"));

    let refused = connect(&server, ConnectOptions::with_token("guess".into()))
        .await
        .expect_err("a wrong token");
    assert_eq!(
        refused.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{refused}"
    );

    let client = connect(&server, ConnectOptions::with_token("s3cret".into()))
        .await
        .expect("the right token");
    let _echo = serve_echo(&client, "greet").await;
    assert_eq!(ask(&client, "greet", "in").await, "echo: in");
}
