//! Session tests of the logs stream, `Probe`, the uplink requests and
//! `Reboot` (helpers in `tests`).

use std::sync::Arc;

use messages::SensorState;
use messages::link::{
    ErrorCode, LinkState, LogBatch, LogLevel, LogLine, LogsTailRequest, Request, Response,
    StreamEnd,
};

use super::NodeView;
use super::session::Limits;
use super::tests::{Client, WAIT, add_events, authenticated, code, node, trusting};

fn push(view: &NodeView, level: LogLevel, n: usize, prefix: &str) {
    for i in 0..n {
        view.logs.push(LogLine {
            time_ms: 1,
            level,
            target: "node::test".into(),
            message: format!("{prefix}{i}"),
        });
    }
}

fn tail(lines: u32, follow: bool, credit: u32, level: LogLevel) -> Request {
    Request::LogsTail(LogsTailRequest {
        lines,
        follow,
        credit,
        level,
    })
}

async fn batch(c: &mut Client, id: u32) -> LogBatch {
    let r = c.recv().await;
    assert_eq!(r.id, id);
    assert!(messages::link::frame_len(&r).unwrap() <= messages::link::STREAM_BATCH_LEN);
    match r.body {
        Response::LogBatch(b) => b,
        other => panic!("{other:?}"),
    }
}

fn texts(b: &LogBatch) -> Vec<&str> {
    b.lines.iter().map(|l| l.message.as_str()).collect()
}

#[tokio::test]
async fn logs_tail_sends_the_last_lines_by_credit_then_completes() {
    let n = node(false, 0);
    push(&n.view, LogLevel::Info, 10, "l");
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(tail(5, false, 2, LogLevel::Trace)).await;
    let b = batch(&mut c, id).await;
    assert_eq!(texts(&b), ["l5", "l6"]);
    assert_eq!((b.missed, b.end), (0, None));
    // Lines logged after the request are not part of it.
    push(&n.view, LogLevel::Info, 3, "later");
    c.send(Request::Credit {
        stream: id,
        items: 100,
    })
    .await;
    let mut got = Vec::new();
    loop {
        let b = batch(&mut c, id).await;
        got.extend(texts(&b).into_iter().map(String::from));
        if let Some(end) = b.end {
            assert_eq!(end, StreamEnd::Complete);
            break;
        }
    }
    assert_eq!(got, ["l7", "l8", "l9"]);
    assert_eq!(c.finish().await.log_lines_sent, 5);
}

#[tokio::test]
async fn logs_tail_filters_by_level() {
    let n = node(false, 0);
    push(&n.view, LogLevel::Debug, 3, "debug");
    push(&n.view, LogLevel::Warn, 2, "warn");
    push(&n.view, LogLevel::Debug, 3, "debug-after");
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(tail(10, false, 100, LogLevel::Warn)).await;
    let b = batch(&mut c, id).await;
    assert_eq!(texts(&b), ["warn0", "warn1"]);
    assert_eq!(b.end, Some(StreamEnd::Complete));
}

#[tokio::test]
async fn a_follow_stream_reports_lines_the_ring_dropped_and_ends_on_cancel() {
    let n = node(false, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    // No credit: the stream sends nothing while 100 lines are logged into
    // a ring of 64.
    let id = c.send(tail(0, true, 0, LogLevel::Trace)).await;
    assert_eq!(c.ask(Request::Ping).await, Response::Pong);
    push(&n.view, LogLevel::Info, 100, "l");
    c.send(Request::Credit {
        stream: id,
        items: 1_000,
    })
    .await;
    let (mut lines, mut missed) = (Vec::new(), 0);
    while lines.len() < 64 {
        let b = batch(&mut c, id).await;
        assert_eq!(b.end, None);
        missed += b.missed;
        lines.extend(texts(&b).into_iter().map(String::from));
    }
    assert_eq!(missed, 36);
    assert_eq!(lines.first().map(String::as_str), Some("l36"));
    assert_eq!(lines.last().map(String::as_str), Some("l99"));
    // New lines keep coming.
    push(&n.view, LogLevel::Info, 1, "new");
    assert_eq!(texts(&batch(&mut c, id).await), ["new0"]);
    let cancel = c.send(Request::Cancel { stream: id }).await;
    assert_eq!(batch(&mut c, id).await.end, Some(StreamEnd::Cancelled));
    let r = c.recv().await;
    assert_eq!((r.id, r.body), (cancel, Response::Done));
}

#[tokio::test]
async fn logs_need_authentication_when_reads_do() {
    let n = node(true, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(tail(10, false, 10, LogLevel::Trace)).await;
    let r = c.recv().await;
    assert_eq!((r.id, code(&r.body)), (id, ErrorCode::Unauthenticated));
}

#[tokio::test]
async fn probe_reports_the_running_sensors_without_touching_them() {
    let n = node(false, 0);
    let view = trusting(&n);
    let board = &view.status.board;
    board.sensor("audio").set_ok();
    board.sensor("camera").set_degraded("no frames for 10 s");
    board.sensor("camera").count("stall");
    let counters = &view.status.counters;
    counters
        .air_temp_c100
        .store(2_135, std::sync::atomic::Ordering::Relaxed);
    counters
        .climate_readings
        .store(4, std::sync::atomic::Ordering::Relaxed);
    // Without authentication: refused.
    let mut c = Client::start(view.clone(), Limits::default());
    c.hello().await;
    assert_eq!(
        code(&c.ask(Request::Probe).await),
        ErrorCode::Unauthenticated
    );
    let mut c = authenticated(view.clone()).await;
    let Response::Probe(p) = c.ask(Request::Probe).await else {
        panic!("not a probe reply")
    };
    let roles: Vec<&str> = p.devices.iter().map(|d| d.role.as_str()).collect();
    assert_eq!(roles, ["microphone", "camera", "climate", "power"]);
    let d = &p.devices;
    assert_eq!(d[0].state, SensorState::Ok);
    assert_eq!(d[1].state, SensorState::Degraded);
    assert!(
        d[1].detail.contains("no frames for 10 s"),
        "{}",
        d[1].detail
    );
    assert!(d[1].detail.contains("stall 1"), "{}", d[1].detail);
    // The climate sensor never reported in this run: absent, with the
    // last reading the node has.
    assert_eq!(d[2].state, SensorState::Absent);
    assert!(d[2].detail.contains("21.35 °C"), "{}", d[2].detail);
    assert!(d[3].detail.contains("battery 50.0 %"), "{}", d[3].detail);
}

#[tokio::test]
async fn uplink_requests_follow_the_running_uplink() {
    let n = node(false, 0);
    add_events(&n.store, 3, 0);
    let view = trusting(&n);
    let live = &view.status.shared.uplink;
    // The uplink does not run: every link disabled, nothing to flush.
    let mut c = authenticated(view.clone()).await;
    let Response::UplinkStatus(s) = c.ask(Request::UplinkStatus).await else {
        panic!("not an uplink status")
    };
    assert!(s.links.iter().all(|l| l.state == LinkState::Disabled));
    assert_eq!(
        code(&c.ask(Request::UplinkFlush).await),
        ErrorCode::InvalidArgument
    );
    // It runs: MQTT failing to connect, two items delivered earlier.
    let wake = Arc::new(tokio::sync::Notify::new());
    live.set_waker(wake.clone());
    live.started(true, false);
    live.mqtt_down(&"connection refused (os error 111)");
    live.delivered(2);
    let Response::UplinkStatus(s) = c.ask(Request::UplinkStatus).await else {
        panic!("not an uplink status")
    };
    assert_eq!(s.links[0].state, LinkState::Down);
    assert_eq!(
        s.links[0].last_error.as_deref(),
        Some("connection refused (os error 111)")
    );
    let Response::OutboxStats(o) = c.ask(Request::OutboxStats).await else {
        panic!("not outbox stats")
    };
    assert_eq!(o.delivered_since_start, 2);
    assert_eq!(o.queue.iter().sum::<u32>(), 3);
    // A flush wakes the uplink, which runs a round.
    let uplink = tokio::spawn({
        let view = view.clone();
        async move {
            wake.notified().await;
            view.status
                .shared
                .uplink
                .round(&uplink::scheduler::Action::SendMqtt { ids: vec![1, 2, 3] });
        }
    });
    let Response::UplinkFlush { queued, round } = c.ask(Request::UplinkFlush).await else {
        panic!("not a flush reply")
    };
    tokio::time::timeout(WAIT, uplink).await.unwrap().unwrap();
    assert_eq!(queued, 3);
    let round = round.expect("the round the flush asked for");
    assert_eq!((round.action.as_str(), round.items), ("mqtt", 3));
    // Without authentication: refused.
    let mut c = Client::start(view.clone(), Limits::default());
    c.hello().await;
    assert_eq!(
        code(&c.ask(Request::UplinkFlush).await),
        ErrorCode::Unauthenticated
    );
}

#[tokio::test]
async fn reboot_needs_authentication_and_answers_before_the_node_stops() {
    let n = node(false, 0);
    let view = trusting(&n);
    let mut c = Client::start(view.clone(), Limits::default());
    c.hello().await;
    assert_eq!(
        code(&c.ask(Request::Reboot).await),
        ErrorCode::Unauthenticated
    );
    assert!(!view.reboot.is_requested());
    let mut c = authenticated(view.clone()).await;
    assert_eq!(
        c.ask(Request::Reboot).await,
        Response::Rebooting {
            after_ms: super::reboot::REBOOT_DELAY_MS
        }
    );
    tokio::time::timeout(WAIT, view.reboot.wait())
        .await
        .expect("the node is asked to stop");
}

#[tokio::test]
async fn a_stream_id_in_use_is_refused_and_one_log_stream_at_a_time() {
    let n = node(false, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(tail(0, true, 10, LogLevel::Trace)).await;
    assert_eq!(
        code(&c.ask(tail(0, true, 10, LogLevel::Trace)).await),
        ErrorCode::Busy
    );
    // An events request reusing the log stream's id.
    let frame = messages::link::encode_frame(&messages::link::RequestEnvelope {
        id,
        body: Request::Events(messages::link::EventsRequest {
            after_id: None,
            since_ms: None,
            limit: None,
            follow: false,
            credit: 10,
        }),
    })
    .unwrap();
    c.write_raw(&frame).await;
    let r = c.recv().await;
    assert_eq!((r.id, code(&r.body)), (id, ErrorCode::InvalidArgument));
}
