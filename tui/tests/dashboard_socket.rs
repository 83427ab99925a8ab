//! The dashboard's socket task against a scripted fake agent on a real Unix socket: the
//! not-running screen, connect + snapshot + events, a request and its answer, a dropped
//! connection that reconnects from a fresh snapshot, and a protocol-version refusal.

use std::path::Path;
use std::time::Duration;

use arbosync_shared::{
    ClientFrame, Event, PROTOCOL_VERSION, RefusalReason, Reply, Request, ResponseOutcome, Role,
    ServerFrame, Snapshot, codec, decode, encode,
};
use arbosync_tui::dashboard::fixtures::{self, id};
use arbosync_tui::dashboard::model::{Connection, Model, Refusal};
use arbosync_tui::dashboard::socket::{self, SocketCommand};
use arbosync_tui::dashboard::update::{Msg, update};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::bytes::Bytes;
use tokio_util::codec::Framed;

type Conn = Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>;

const WAIT: Duration = Duration::from_secs(10);

async fn next_msg(msgs: &mut mpsc::Receiver<Msg>) -> Msg {
    match tokio::time::timeout(WAIT, msgs.recv()).await {
        Ok(Some(msg)) => msg,
        Ok(None) => panic!("the socket task stopped"),
        Err(_) => panic!("no message from the socket task within {WAIT:?}"),
    }
}

async fn send(conn: &mut Conn, frame: &ServerFrame) {
    let bytes = encode(frame).expect("encode");
    conn.send(Bytes::from(bytes)).await.expect("send frame");
}

async fn recv(conn: &mut Conn) -> Option<ClientFrame> {
    let bytes = conn.next().await?.ok()?;
    Some(decode(&bytes).expect("client frame"))
}

/// Accepts one connection and answers the handshake.
async fn accept(listener: &UnixListener, protocol_version: u32) -> Conn {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the dashboard connects")
        .expect("accept");
    let mut conn = Framed::new(stream, codec());
    match recv(&mut conn).await {
        Some(ClientFrame::Hello {
            protocol_version: v,
            ..
        }) => assert_eq!(v, PROTOCOL_VERSION),
        other => panic!("expected hello, got {other:?}"),
    }
    if protocol_version == PROTOCOL_VERSION {
        send(
            &mut conn,
            &ServerFrame::Welcome {
                protocol_version,
                agent_version: "0.1.0".to_owned(),
                role: Role::Admin,
            },
        )
        .await;
    } else {
        send(
            &mut conn,
            &ServerFrame::Refused {
                protocol_version,
                agent_version: "9.0.0".to_owned(),
                reason: RefusalReason::ProtocolMismatch,
                message: "protocol mismatch".to_owned(),
            },
        )
        .await;
    }
    conn
}

/// Answers the dashboard's `Subscribe` with `snapshot`.
async fn answer_subscribe(conn: &mut Conn, snapshot: Snapshot) {
    match recv(conn).await {
        Some(ClientFrame::Request {
            id,
            request: Request::Subscribe,
        }) => {
            send(
                conn,
                &ServerFrame::Response {
                    id,
                    outcome: ResponseOutcome::Ok(Reply::Snapshot {
                        snapshot: Box::new(snapshot),
                    }),
                },
            )
            .await
        }
        other => panic!("expected subscribe, got {other:?}"),
    }
}

/// The next message that is not a repeated not-running refusal (the task keeps retrying while
/// the test sets up the agent).
async fn next_past_refusals(msgs: &mut mpsc::Receiver<Msg>) -> Msg {
    loop {
        match next_msg(msgs).await {
            Msg::Refused {
                refusal: Refusal::NotRunning,
                ..
            } => continue,
            other => return other,
        }
    }
}

fn start(socket: &Path) -> (mpsc::Receiver<Msg>, mpsc::Sender<SocketCommand>) {
    let (msg_tx, msg_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    tokio::spawn(socket::run(socket.to_path_buf(), msg_tx, cmd_rx));
    (msg_rx, cmd_tx)
}

#[tokio::test]
async fn not_running_then_connect_subscribe_request_drop_and_reconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let (mut msgs, commands) = start(&path);
    let mut model = Model::new(path.display().to_string(), fixtures::now(), true);

    // No agent yet: the not-running screen, with the first backoff.
    let msg = next_msg(&mut msgs).await;
    assert_eq!(
        msg,
        Msg::Refused {
            refusal: Refusal::NotRunning,
            retry_in: Duration::from_millis(500),
        }
    );
    update(&mut model, msg);
    assert!(matches!(model.connection, Connection::Refused { .. }));

    // A request while disconnected fails at once instead of hanging.
    commands
        .send(SocketCommand::Send(Request::Pause { employer: id(1) }))
        .await
        .expect("command");
    assert!(matches!(
        next_past_refusals(&mut msgs).await,
        Msg::RequestDone { result: Err(_), .. }
    ));

    // The agent appears; `r` skips the rest of the backoff.
    let listener = UnixListener::bind(&path).expect("bind");
    commands
        .send(SocketCommand::ReconnectNow)
        .await
        .expect("command");
    let mut conn = accept(&listener, PROTOCOL_VERSION).await;
    let connected = next_past_refusals(&mut msgs).await;
    assert_eq!(
        connected,
        Msg::Connected {
            role: Role::Admin,
            agent_version: "0.1.0".to_owned()
        }
    );
    update(&mut model, connected);
    answer_subscribe(&mut conn, fixtures::snapshot()).await;
    let snapshot = next_msg(&mut msgs).await;
    assert!(matches!(&snapshot, Msg::Snapshot(s) if s.employers.len() == 12));
    update(&mut model, snapshot);

    // Pushed events arrive in order.
    let started = Event::RunStarted {
        employer: id(1),
        run_id: id(0x77),
        full: false,
        at: fixtures::now(),
    };
    send(
        &mut conn,
        &ServerFrame::Event {
            event: started.clone(),
        },
    )
    .await;
    let msg = next_msg(&mut msgs).await;
    assert_eq!(msg, Msg::Event(started));
    update(&mut model, msg);
    assert!(model.employer(id(1)).is_some_and(|e| e.running.is_some()));

    // A request goes out with an id and its answer comes back as a message.
    let request = Request::SyncNow {
        employer: Some(id(1)),
        full: false,
    };
    commands
        .send(SocketCommand::Send(request.clone()))
        .await
        .expect("command");
    match recv(&mut conn).await {
        Some(ClientFrame::Request {
            id: rid,
            request: r,
        }) => {
            assert_eq!(r, request);
            send(
                &mut conn,
                &ServerFrame::Response {
                    id: rid,
                    outcome: ResponseOutcome::Ok(Reply::SyncQueued {
                        employers: vec![id(1)],
                    }),
                },
            )
            .await;
        }
        other => panic!("expected the request, got {other:?}"),
    }
    assert_eq!(
        next_msg(&mut msgs).await,
        Msg::RequestDone {
            request,
            result: Ok(Reply::SyncQueued {
                employers: vec![id(1)]
            }),
        }
    );

    // The agent goes away: disconnected, then a reconnect that starts from a fresh snapshot.
    drop(conn);
    let lost = next_msg(&mut msgs).await;
    assert!(
        matches!(
            lost,
            Msg::Disconnected {
                retry_in,
                ..
            } if retry_in == Duration::from_millis(500)
        ),
        "{lost:?}"
    );
    update(&mut model, lost);
    assert!(matches!(model.connection, Connection::Lost { .. }));
    assert!(model.has_data(), "stale data stays while reconnecting");

    let mut conn = accept(&listener, PROTOCOL_VERSION).await;
    let connected = next_msg(&mut msgs).await;
    update(&mut model, connected);
    let mut fresh = fixtures::snapshot();
    fresh.employers.truncate(4);
    answer_subscribe(&mut conn, fresh).await;
    let snapshot = next_msg(&mut msgs).await;
    update(&mut model, snapshot);
    assert!(model.is_connected());
    assert_eq!(
        model.employers.len(),
        4,
        "the fresh snapshot replaced the old data"
    );
    assert!(
        model.employer(id(1)).is_some_and(|e| e.running.is_none()),
        "nothing from the old session lingers"
    );

    // The UI going away stops the task (it sees its channels closed).
    drop(commands);
    drop(msgs);
}

#[tokio::test]
async fn protocol_mismatch_is_its_own_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (mut msgs, _commands) = start(&path);
    let _conn = accept(&listener, PROTOCOL_VERSION + 1).await;
    assert_eq!(
        next_msg(&mut msgs).await,
        Msg::Refused {
            refusal: Refusal::ProtocolMismatch {
                agent_version: "9.0.0".to_owned(),
                agent_protocol: PROTOCOL_VERSION + 1,
            },
            retry_in: Duration::from_millis(500),
        }
    );
}
