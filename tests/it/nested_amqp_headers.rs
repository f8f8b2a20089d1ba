//! Deeply nested AMQP headers, against the real binary: one message whose
//! header table is 15,000 levels deep must not end the worker, whether it
//! comes through a phase queue or through the profile-events fanout (where it
//! would reach every instance at once).

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::{TestBroker, TestEnv};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::authrelay;

/// One AMQP 0-9-1 publish, encoded by hand: a client library that serializes
/// field tables recursively cannot even send what this test needs.
mod raw_amqp {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        f
    }

    fn short(s: &str) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
        [&class.to_be_bytes()[..], &id.to_be_bytes(), args].concat()
    }

    async fn read_frame(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 7];
        s.read_exact(&mut head).await.unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize + 1];
        s.read_exact(&mut payload).await.unwrap();
        payload.pop();
        (head[0], payload)
    }

    /// A header table holding `{"a": {"a": … {}}}`, `depth` levels deep.
    pub fn nested_headers(depth: usize) -> Vec<u8> {
        let mut out = ((7 * depth) as u32).to_be_bytes().to_vec();
        for level in (1..=depth).rev() {
            out.extend_from_slice(&[1, b'a', b'F']);
            out.extend_from_slice(&((7 * (level - 1)) as u32).to_be_bytes());
        }
        out
    }

    /// Publishes with confirms and returns once the broker has confirmed.
    pub async fn publish(exchange: &str, routing_key: &str, headers: Vec<u8>, body: &[u8]) {
        let mut s = tokio::net::TcpStream::connect("127.0.0.1:5672").await.unwrap();
        s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
        read_frame(&mut s).await; // Connection.Start
        let login = b"\0guest\0guest";
        let start_ok =
            [&0u32.to_be_bytes()[..], &short("PLAIN"), &(login.len() as u32).to_be_bytes(), login, &short("en_US")]
                .concat();
        s.write_all(&frame(1, 0, &method(10, 11, &start_ok))).await.unwrap();
        let (_, tune) = read_frame(&mut s).await;
        let tune_ok = [&tune[4..10], &0u16.to_be_bytes()[..]].concat(); // channel_max, frame_max, no heartbeat
        s.write_all(&frame(1, 0, &method(10, 31, &tune_ok))).await.unwrap();
        s.write_all(&frame(1, 0, &method(10, 40, &[short("/"), short(""), vec![0]].concat()))).await.unwrap();
        read_frame(&mut s).await; // Connection.Open-Ok
        s.write_all(&frame(1, 1, &method(20, 10, &short("")))).await.unwrap();
        read_frame(&mut s).await; // Channel.Open-Ok
        s.write_all(&frame(1, 1, &method(85, 10, &[0]))).await.unwrap();
        read_frame(&mut s).await; // Confirm.Select-Ok
        let publish = [&0u16.to_be_bytes()[..], &short(exchange), &short(routing_key), &[0]].concat();
        s.write_all(&frame(1, 1, &method(60, 40, &publish))).await.unwrap();
        // Content header: class, weight, size, flags (content-type, headers, delivery-mode), properties.
        let flags: u16 = (1 << 15) | (1 << 13) | (1 << 12);
        let header = [
            &60u16.to_be_bytes()[..],
            &0u16.to_be_bytes(),
            &(body.len() as u64).to_be_bytes(),
            &flags.to_be_bytes(),
            &short("application/json"),
            &headers,
            &[2],
        ]
        .concat();
        s.write_all(&frame(2, 1, &header)).await.unwrap();
        s.write_all(&frame(3, 1, body)).await.unwrap();
        let (_, ack) = read_frame(&mut s).await;
        assert_eq!(&ack[..4], &[0, 60, 0, 80], "the broker confirms the message (Basic.Ack)");
    }
}

/// The same depth reaches the worker through a phase queue and through the
/// profile-events fanout (where it would reach every instance at once).
async fn a_worker_survives_nested_headers(deliver: impl AsyncFnOnce(&TestBroker, Vec<u8>)) {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let mut process = authrelay(&env).serve(&["run", "--roles", "worker"]).await;

    // 15,000 levels: 105 KB of headers, within the broker's 128 KiB frame. A debug build
    // already fails at 300 levels, a release build at 3,000.
    deliver(&broker, raw_amqp::nested_headers(15_000)).await;

    process.stays_up_for(Duration::from_secs(3)).await;
    assert_eq!(process.ready().await, Some(200));
}

#[tokio::test]
async fn a_job_message_with_deeply_nested_amqp_headers_does_not_end_the_worker() {
    a_worker_survives_nested_headers(async |broker: &TestBroker, headers| {
        let queue = broker.names.phase_queue(Phase::PostCall);
        raw_amqp::publish("", &queue, headers, br#"{"job_id": "deep-headers"}"#).await;
    })
    .await;
}

#[tokio::test]
async fn a_profile_event_with_deeply_nested_amqp_headers_does_not_end_the_worker() {
    a_worker_survives_nested_headers(async |broker: &TestBroker, headers| {
        raw_amqp::publish(&broker.names.events_exchange(), "", headers, b"{}").await;
    })
    .await;
}
