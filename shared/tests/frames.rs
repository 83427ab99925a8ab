//! Round trips of every frame kind, and decoding arbitrary bytes never panics.

use arbosync_shared::*;
use proptest::prelude::*;
use uuid::Uuid;

fn roundtrip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    decode(&encode(value).expect("encodes")).expect("decodes")
}

#[test]
fn client_frames_round_trip() {
    let employer = Uuid::from_u128(7);
    let frames = vec![
        ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "test".into(),
        },
        ClientFrame::Request {
            id: u64::MAX,
            request: Request::SyncNow {
                employer: Some(employer),
                full: true,
            },
        },
        ClientFrame::Request {
            id: 1,
            request: Request::Requeue {
                employer,
                entity: "absence".into(),
                record_id: "x".into(),
            },
        },
        ClientFrame::Request {
            id: 2,
            request: Request::Subscribe,
        },
    ];
    for f in &frames {
        assert_eq!(&roundtrip(f), f);
    }
}

#[test]
fn server_frames_round_trip() {
    let frames = vec![
        ServerFrame::Welcome {
            protocol_version: 1,
            agent_version: "0.1.0".into(),
            role: Role::ReadOnly,
        },
        ServerFrame::Response {
            id: 3,
            outcome: ResponseOutcome::Ok(Reply::SyncQueued {
                employers: vec![Uuid::from_u128(1)],
            }),
        },
        ServerFrame::Response {
            id: 4,
            outcome: ResponseOutcome::Err(RequestError::NotPermitted {
                reason: "read-only".into(),
            }),
        },
        ServerFrame::Event {
            event: Event::RunProgress {
                employer: Uuid::from_u128(1),
                run_id: Uuid::from_u128(2),
                progress: Progress::Applying { done: 1, total: 2 },
            },
        },
    ];
    for f in &frames {
        assert_eq!(&roundtrip(f), f);
    }
}

#[test]
fn malformed_frames_are_errors_that_do_not_echo_content() {
    let err = decode::<ClientFrame>(
        br#"{"type":"request","id":1,"request":{"op":"canary-BSN-999999990"}}"#,
    )
    .unwrap_err();
    assert!(!err.to_string().contains("999999990"), "{err}");
    assert!(decode::<ClientFrame>(b"{\"type\":\"hello\"").is_err());
    assert!(decode::<ClientFrame>(b"\xff\xfe").is_err());
    assert!(decode::<ClientFrame>(b"").is_err());
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<ClientFrame>(&bytes);
        let _ = decode::<ServerFrame>(&bytes);
    }

    #[test]
    fn decoding_json_like_text_never_panics(text in r#"[{}\[\]":,a-z0-9 ]{0,200}"#) {
        let _ = decode::<ClientFrame>(text.as_bytes());
    }
}
