//! Field-link messages: every request and reply round-trips through a frame,
//! the parts frozen across major versions keep their bytes, versions,
//! access rules, error codes and the signed authentication bytes.

use messages::link::{
    AUTH_DOMAIN, Access, ApplyWhen, AuthProve, BUNDLE_CHUNK_LEN, BundleKind, BundleOutcome,
    BundlePush, ConfigOutcome, ConfigProblem, ConfigText, ErrorCode, ErrorReply, EventBatch,
    EventsRequest, FrameDecoder, Hello, HelloReply, InstallWhen, LinkState, LogBatch, LogLevel,
    LogLine, LogsTailRequest, MAX_FRAME_LEN, OutboxStatsReply, PROTOCOL_VERSION, ProbeDevice,
    ProbeReply, Request, RequestEnvelope, Response, ResponseEnvelope, STREAM_BATCH_LEN, Signature,
    StreamEnd, TimeReply, UplinkInfo, UplinkRound, UplinkStatusReply, auth_signed_bytes,
    encode_frame, frame_len, is_compatible, protocol_major, protocol_minor, version_string,
};
use messages::{
    DropCounters, EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille,
    PowerModeCode, SensorHealth, SensorState, StatusRecord,
};

fn event(id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: "node-07".into(),
        start_ms: 1_780_000_000_000 + id as i64,
        duration_ms: 4_250,
        class: EventClass::Wildlife,
        confidence: Permille(870),
        scores: ModalityScores {
            audio: Some(Permille(910)),
            camera: Some(Permille(640)),
            climate: None,
        },
        features: KeyFeatures {
            audio_snr_db10: Some(183),
            audio_peak_hz: Some(3150),
            motion_area: Some(Permille(42)),
            motion_centroid: Some((200, 120)),
            temp_delta_c100: Some(-3),
            temp_c100: Some(1850),
        },
        model: ModelVersion(3),
        time: Default::default(),
        mono: None,
    }
}

fn status() -> StatusRecord {
    StatusRecord {
        id: 0,
        node_id: "node-07".into(),
        time_ms: 1_780_000_000_000,
        uptime_s: 86_400,
        battery_permille: 640,
        battery_mv: 12_800,
        power_mode: PowerModeCode::Saving,
        air_temp_c100: Some(-250),
        board_temp_c100: Some(4_100),
        sensors: SensorHealth {
            microphone: SensorState::Ok,
            camera: SensorState::Degraded,
            climate: SensorState::Absent,
            model: SensorState::Ok,
        },
        queue: [1, 2, 3, 4],
        drops: DropCounters {
            evicted_budget: 5,
            expired_ttl: 6,
            corrupt: 7,
        },
        model: ModelVersion(3),
        last_contact_ms: Some(1_779_999_000_000),
        cause: messages::StatusCause::UpdateResult,
        update: messages::UpdateStatus {
            model_active: 3,
            model_staged: Some(4),
            settings: 1,
            last: Some(messages::UpdateResult {
                kind: messages::BundleKindCode::Model,
                name: messages::ShortText::new("fusion"),
                version: 4,
                result: messages::UpdateOutcome::OnTrial,
                reason: messages::ShortText::new("self-test passed"),
            }),
        },
        disk: messages::DiskReport {
            free_mib: Some(2_048),
            state: messages::DiskStateCode::Evicting,
            evicted: 9,
        },
        clock: messages::ClockStatus {
            quality: messages::TimeQuality {
                source: messages::TimeSource::Synced,
                uncertainty_ms: Some(20),
                restamped: false,
            },
            steps: 1,
            largest_step_ms: -3_000,
            rtc: messages::RtcStatus {
                state: messages::RtcState::Found,
                offset_s: Some(-2),
                cell_mv: Some(2_410),
            },
            sleep: Some(messages::LastSleep {
                reason: messages::SleepReasonCode::LowBattery,
                slept_s: 21_600,
                planned_s: 21_600,
                wake: messages::WakeCause::Rtc,
            }),
        },
        detection: Some(messages::DetectionHealth {
            events_cut_at_max: 1,
            events_joined: 212,
        }),
        not_stored: Some(messages::NotStored {
            excluded: 4,
            background_dropped: 0,
            uncertain_background: 31,
            sun_heat_rises: 2,
        }),
    }
}

/// One example of every request (and of every bundle step).
fn all_requests() -> Vec<Request> {
    vec![
        Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "field-tools 0.1.0 (tech@laptop)".into(),
        }),
        Request::AuthChallenge,
        Request::AuthProve(AuthProve {
            public_key: [0xAB; 32],
            signature: Signature([0xCD; 64]),
        }),
        Request::Ping,
        Request::Status,
        Request::Events(EventsRequest {
            after_id: Some(u64::MAX),
            since_ms: Some(i64::MIN),
            limit: Some(u32::MAX),
            follow: true,
            credit: 64,
        }),
        Request::Events(EventsRequest {
            after_id: None,
            since_ms: None,
            limit: None,
            follow: false,
            credit: 0,
        }),
        Request::LogsTail(LogsTailRequest {
            lines: 200,
            follow: true,
            credit: 500,
            level: LogLevel::Warn,
        }),
        Request::Credit {
            stream: 12,
            items: 64,
        },
        Request::Cancel { stream: 12 },
        Request::ConfigShow,
        Request::ConfigValidate {
            toml: "[node]\nid = \"node-07\"\n".into(),
        },
        Request::ConfigSet {
            toml: "[power]\ninterval_ms = 1000\n".into(),
        },
        Request::TimeGet,
        Request::TimeSet {
            unix_ms: 1_780_000_000_123,
            uncertainty_ms: 40,
        },
        Request::Probe,
        Request::UplinkFlush,
        Request::UplinkStatus,
        Request::OutboxStats,
        Request::BundlePush(BundlePush::Begin {
            kind: BundleKind::Model,
            total_len: 102_571,
            sha256: [0x5A; 32],
        }),
        Request::BundlePush(BundlePush::Begin {
            kind: BundleKind::Settings,
            total_len: 228,
            sha256: [0; 32],
        }),
        Request::BundlePush(BundlePush::Chunk {
            offset: 2048,
            data: (0..BUNDLE_CHUNK_LEN).map(|i| (i * 7) as u8).collect(),
        }),
        Request::BundlePush(BundlePush::Commit { force_power: true }),
        Request::Reboot,
    ]
}

/// One example of every reply.
fn all_responses() -> Vec<Response> {
    vec![
        Response::Error(ErrorReply {
            code: ErrorCode::Busy,
            message: "a bundle transfer is running on another session".into(),
        }),
        Response::Error(ErrorReply {
            code: ErrorCode::Other(4242),
            message: "from the future".into(),
        }),
        Response::Hello(HelloReply {
            protocol_version: PROTOCOL_VERSION,
            node_id: "node-07".into(),
            firmware_version: "0.1.0".into(),
            session_nonce: [0x11; 32],
            auth_required_for_reads: true,
            idle_timeout_ms: 300_000,
        }),
        Response::AuthChallenge {
            challenge: [0x22; 32],
        },
        Response::Authenticated,
        Response::Pong,
        Response::Status(Box::new(status())),
        Response::EventBatch(EventBatch {
            events: vec![event(10), event(12)],
            resume_after_id: Some(13),
            end: None,
        }),
        Response::EventBatch(EventBatch {
            events: vec![],
            resume_after_id: None,
            end: Some(StreamEnd::Complete),
        }),
        Response::EventBatch(EventBatch {
            events: vec![event(1)],
            resume_after_id: Some(1),
            end: Some(StreamEnd::LimitReached),
        }),
        Response::LogBatch(LogBatch {
            lines: vec![
                LogLine {
                    time_ms: 1_780_000_000_000,
                    level: LogLevel::Warn,
                    target: "node::sensors::alsa_mic".into(),
                    message: "stream stalled, reopening".into(),
                },
                LogLine {
                    time_ms: 1_780_000_000_500,
                    level: LogLevel::Trace,
                    target: "t".into(),
                    message: String::new(),
                },
            ],
            missed: 3,
            end: Some(StreamEnd::Cancelled),
        }),
        Response::Done,
        Response::Config(ConfigText {
            toml: "[node]\nid = \"node-07\"\n".into(),
            pending_restart: true,
        }),
        Response::ConfigChecked(ConfigOutcome::Invalid {
            problems: vec![
                ConfigProblem {
                    key: "power.interval_ms".into(),
                    problem: "must be at least 100".into(),
                },
                ConfigProblem {
                    key: String::new(),
                    problem: "TOML syntax error at line 3".into(),
                },
            ],
        }),
        Response::ConfigSet(ConfigOutcome::Valid {
            changed: vec!["power.interval_ms".into()],
            applies: ApplyWhen::NextStart,
        }),
        Response::ConfigSet(ConfigOutcome::Valid {
            changed: vec![],
            applies: ApplyWhen::Live,
        }),
        Response::Time(TimeReply {
            unix_ms: 1_780_000_000_000,
            uncertainty_ms: None,
            source: "build".into(),
        }),
        Response::TimeSet {
            step_ms: -3_600_000,
        },
        Response::Probe(ProbeReply {
            devices: vec![ProbeDevice {
                role: "climate".into(),
                device: "i2c-1 0x76".into(),
                state: SensorState::Ok,
                detail: "BME280, 21.4 °C".into(),
            }],
        }),
        Response::UplinkFlush {
            queued: 812,
            round: None,
        },
        Response::UplinkFlush {
            queued: 3,
            round: Some(UplinkRound {
                action: "mqtt".into(),
                items: 3,
                detail: String::new(),
            }),
        },
        Response::UplinkStatus(UplinkStatusReply {
            links: vec![
                UplinkInfo {
                    link: "mqtt".into(),
                    state: LinkState::Down,
                    last_success_ms: Some(1_779_000_000_000),
                    last_error: Some("connection refused".into()),
                },
                UplinkInfo {
                    link: "sbd".into(),
                    state: LinkState::Held,
                    last_success_ms: None,
                    last_error: None,
                },
                UplinkInfo {
                    link: "x".into(),
                    state: LinkState::Disabled,
                    last_success_ms: None,
                    last_error: None,
                },
                UplinkInfo {
                    link: "y".into(),
                    state: LinkState::Up,
                    last_success_ms: None,
                    last_error: None,
                },
            ],
            sbd_credits_left: Some(120),
        }),
        Response::OutboxStats(OutboxStatsReply {
            queue: [10, 20, 30, 40],
            bytes: 1 << 33,
            budget_bytes: 1 << 34,
            oldest_ms: Some(1_770_000_000_000),
            drops: DropCounters {
                evicted_budget: 1,
                expired_ttl: 2,
                corrupt: 3,
            },
            delivered_since_start: 99,
        }),
        Response::BundleOffset { offset: 4096 },
        Response::BundleCommitted(BundleOutcome::Queued {
            install: InstallWhen::Deferred,
        }),
        Response::BundleCommitted(BundleOutcome::Queued {
            install: InstallWhen::Now,
        }),
        Response::BundleCommitted(BundleOutcome::Queued {
            install: InstallWhen::NextStart,
        }),
        Response::BundleCommitted(BundleOutcome::Refused {
            code: "rollback".into(),
            reason: "version 3 is not above the installed 4".into(),
        }),
        Response::BundleCommitted(BundleOutcome::Installed {
            reason: "applied".into(),
        }),
        Response::BundleCommitted(BundleOutcome::OnTrial {
            reason: "self-test passed".into(),
        }),
        Response::BundleCommitted(BundleOutcome::Deferred {
            reason: "battery at 30%, below 50%".into(),
        }),
        Response::BundleCommitted(BundleOutcome::RolledBack {
            code: "self_test".into(),
            reason: "vector 2 differs".into(),
        }),
        Response::Rebooting { after_ms: 1_000 },
    ]
}

/// Wire index of a request; the match is exhaustive, so a new request
/// does not compile until it is numbered here (and then must be in
/// `all_requests` for the coverage check to pass).
fn request_index(r: &Request) -> usize {
    match r {
        Request::Hello(_) => 0,
        Request::AuthChallenge => 1,
        Request::AuthProve(_) => 2,
        Request::Ping => 3,
        Request::Status => 4,
        Request::Events(_) => 5,
        Request::LogsTail(_) => 6,
        Request::Credit { .. } => 7,
        Request::Cancel { .. } => 8,
        Request::ConfigShow => 9,
        Request::ConfigValidate { .. } => 10,
        Request::ConfigSet { .. } => 11,
        Request::TimeGet => 12,
        Request::TimeSet { .. } => 13,
        Request::Probe => 14,
        Request::UplinkFlush => 15,
        Request::UplinkStatus => 16,
        Request::OutboxStats => 17,
        Request::BundlePush(_) => 18,
        Request::Reboot => 19,
    }
}
const REQUEST_VARIANTS: usize = 20;

fn response_index(r: &Response) -> usize {
    match r {
        Response::Error(_) => 0,
        Response::Hello(_) => 1,
        Response::AuthChallenge { .. } => 2,
        Response::Authenticated => 3,
        Response::Pong => 4,
        Response::Status(_) => 5,
        Response::EventBatch(_) => 6,
        Response::LogBatch(_) => 7,
        Response::Done => 8,
        Response::Config(_) => 9,
        Response::ConfigChecked(_) => 10,
        Response::ConfigSet(_) => 11,
        Response::Time(_) => 12,
        Response::TimeSet { .. } => 13,
        Response::Probe(_) => 14,
        Response::UplinkFlush { .. } => 15,
        Response::UplinkStatus(_) => 16,
        Response::OutboxStats(_) => 17,
        Response::BundleOffset { .. } => 18,
        Response::BundleCommitted(_) => 19,
        Response::Rebooting { .. } => 20,
    }
}
const RESPONSE_VARIANTS: usize = 21;

#[test]
fn every_request_round_trips_through_a_frame() {
    let requests = all_requests();
    let mut seen = [false; REQUEST_VARIANTS];
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    for (i, body) in requests.into_iter().enumerate() {
        let index = request_index(&body);
        seen[index] = true;
        // The variant index is the byte after the id (ids below 128 take one).
        let envelope = RequestEnvelope {
            id: i as u32 + 1,
            body,
        };
        let payload = postcard::to_allocvec(&envelope).unwrap();
        assert_eq!(usize::from(payload[1]), index, "{}", envelope.body.name());
        let wire = encode_frame(&envelope).unwrap();
        assert_eq!(decoder.feed(&wire), vec![Ok(envelope)]);
    }
    assert!(seen.iter().all(|&s| s), "every request covered: {seen:?}");
}

#[test]
fn every_response_round_trips_through_a_frame() {
    let mut seen = [false; RESPONSE_VARIANTS];
    let mut decoder = FrameDecoder::<ResponseEnvelope>::new();
    for (i, body) in all_responses().into_iter().enumerate() {
        let index = response_index(&body);
        seen[index] = true;
        let envelope = ResponseEnvelope {
            id: i as u32 + 1,
            body,
        };
        let payload = postcard::to_allocvec(&envelope).unwrap();
        assert_eq!(usize::from(payload[1]), index, "{}", envelope.body.name());
        let wire = encode_frame(&envelope).unwrap();
        assert_eq!(decoder.feed(&wire), vec![Ok(envelope)]);
    }
    assert!(seen.iter().all(|&s| s), "every response covered: {seen:?}");
}

#[test]
fn names_are_unique() {
    let mut names: Vec<_> = all_requests().iter().map(Request::name).collect();
    names.sort();
    names.dedup();
    // 20 variants, three of them bundle steps with their own names.
    assert_eq!(names.len(), REQUEST_VARIANTS + 2);
    let mut names: Vec<_> = all_responses().iter().map(Response::name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), RESPONSE_VARIANTS);
}

#[test]
fn the_hello_and_the_error_reply_keep_their_bytes() {
    // Frozen across major versions (docs/field-link.md, "Versions"): a node
    // of any version reads a Hello, a client of any version reads the
    // BadVersion error.
    let hello = RequestEnvelope {
        id: 1,
        body: Request::Hello(Hello {
            protocol_version: 0x0100,
            client: "t".into(),
        }),
    };
    assert_eq!(
        postcard::to_allocvec(&hello).unwrap(),
        vec![0x01, 0x00, 0x80, 0x02, 0x01, b't']
    );
    let error = ResponseEnvelope {
        id: 1,
        body: Response::Error(ErrorReply {
            code: ErrorCode::BadVersion,
            message: "x".into(),
        }),
    };
    assert_eq!(
        postcard::to_allocvec(&error).unwrap(),
        vec![0x01, 0x00, 0x02, 0x01, b'x']
    );
    // A Hello from a client of major version 2 still decodes here, so the
    // node can refuse it with a clear error.
    let future = RequestEnvelope {
        id: 5,
        body: Request::Hello(Hello {
            protocol_version: 0x0203,
            client: "field-tools 9".into(),
        }),
    };
    let future_with_id_1 = RequestEnvelope {
        id: 1,
        body: Request::Hello(Hello {
            protocol_version: 0x0203,
            client: "t".into(),
        }),
    };
    // docs/field-link.md, "Versions".
    assert_eq!(
        postcard::to_allocvec(&future_with_id_1).unwrap(),
        vec![0x01, 0x00, 0x83, 0x04, 0x01, b't']
    );
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    let decoded = decoder.feed(&encode_frame(&future).unwrap());
    let Some(Ok(RequestEnvelope {
        body: Request::Hello(h),
        ..
    })) = decoded.into_iter().next()
    else {
        panic!("the Hello decodes");
    };
    assert!(!is_compatible(h.protocol_version));
}

#[test]
fn versions() {
    assert_eq!(protocol_major(PROTOCOL_VERSION), 1);
    assert_eq!(protocol_minor(PROTOCOL_VERSION), 3);
    assert_eq!(version_string(PROTOCOL_VERSION), "1.3");
    assert_eq!(version_string(0x0203), "2.3");
    assert!(is_compatible(PROTOCOL_VERSION));
    assert!(is_compatible(0x01FF), "a newer minor version is compatible");
    assert!(!is_compatible(0x0200));
    assert!(!is_compatible(0x0000));
}

#[test]
fn error_codes_travel_as_numbers_and_unknown_ones_survive() {
    let known = [
        (ErrorCode::UnknownRequest, 1u16, "unknown_request"),
        (ErrorCode::BadVersion, 2, "bad_version"),
        (ErrorCode::Unauthenticated, 3, "unauthenticated"),
        (ErrorCode::BadSignature, 4, "bad_signature"),
        (ErrorCode::Busy, 5, "busy"),
        (ErrorCode::InvalidArgument, 6, "invalid_argument"),
        (ErrorCode::Internal, 7, "internal"),
    ];
    for (code, number, name) in known {
        assert_eq!(u16::from(code), number);
        assert_eq!(ErrorCode::from(number), code);
        assert_eq!(code.name(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(
            postcard::to_allocvec(&code).unwrap(),
            postcard::to_allocvec(&number).unwrap()
        );
    }
    let bytes = postcard::to_allocvec(&999u16).unwrap();
    let code: ErrorCode = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(code, ErrorCode::Other(999));
    assert_eq!(code.to_string(), "error code 999");
    assert_eq!(postcard::to_allocvec(&code).unwrap(), bytes);
}

#[test]
fn a_signature_is_64_bytes_without_a_length() {
    let mut raw = [0u8; 64];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = i as u8;
    }
    let bytes = postcard::to_allocvec(&Signature(raw)).unwrap();
    assert_eq!(bytes, raw.to_vec());
    let back: Signature = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, Signature(raw));
    assert!(postcard::from_bytes::<Signature>(&bytes[..63]).is_err());
    assert!(format!("{back:?}").starts_with("Signature(000102"));
}

#[test]
fn the_signed_bytes_are_laid_out_as_documented() {
    let nonce = [1u8; 32];
    let challenge = [2u8; 32];
    let key = [3u8; 32];
    let signed = auth_signed_bytes(&nonce, &challenge, &key, "node-07");
    let mut expected = b"fieldlink-auth-v1\0".to_vec();
    expected.extend([1u8; 32]);
    expected.extend([2u8; 32]);
    expected.extend([3u8; 32]);
    expected.extend([7, 0]);
    expected.extend(b"node-07");
    assert_eq!(signed, expected);
    assert_eq!(AUTH_DOMAIN, b"fieldlink-auth-v1");

    // Each input changes the bytes: a proof is bound to the session, the
    // challenge, the key and the node.
    let other = [
        auth_signed_bytes(&[9; 32], &challenge, &key, "node-07"),
        auth_signed_bytes(&nonce, &[9; 32], &key, "node-07"),
        auth_signed_bytes(&nonce, &challenge, &[9; 32], "node-07"),
        auth_signed_bytes(&nonce, &challenge, &key, "node-08"),
        auth_signed_bytes(&nonce, &challenge, &key, "node-0"),
    ];
    for o in &other {
        assert_ne!(o, &signed);
    }
    // An absurd node id is cut, not a panic.
    let long = "x".repeat(70_000);
    assert_eq!(
        auth_signed_bytes(&nonce, &challenge, &key, &long).len(),
        18 + 96 + 2 + 65_535
    );
}

#[test]
fn access_rules() {
    for request in all_requests() {
        let access = request.access();
        match &request {
            Request::Hello(_)
            | Request::AuthChallenge
            | Request::AuthProve(_)
            | Request::Ping
            | Request::Credit { .. }
            | Request::Cancel { .. } => assert_eq!(access, Access::Open),
            Request::ConfigSet { .. }
            | Request::TimeSet { .. }
            | Request::Probe
            | Request::UplinkFlush
            | Request::BundlePush(_)
            | Request::Reboot => assert_eq!(access, Access::Control),
            _ => assert_eq!(access, Access::Read, "{}", request.name()),
        }
        assert_eq!(request.needs_auth(true), access != Access::Open);
        assert_eq!(request.needs_auth(false), access == Access::Control);
        match request {
            Request::Credit { .. } => assert_eq!(request.reply_timeout_ms(), None),
            _ => assert!(request.reply_timeout_ms().is_some()),
        }
    }
}

#[test]
fn the_big_messages_fit_a_frame() {
    // A bundle chunk of the recommended size, with a large offset.
    let chunk = RequestEnvelope {
        id: u32::MAX,
        body: Request::BundlePush(BundlePush::Chunk {
            offset: u64::MAX,
            data: vec![0xFF; BUNDLE_CHUNK_LEN],
        }),
    };
    assert!(frame_len(&chunk).unwrap() <= MAX_FRAME_LEN);

    // The example configuration, every key with its comment, set and shown.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/fieldnode.toml"
    ))
    .expect("the example configuration");
    let set = RequestEnvelope {
        id: 1,
        body: Request::ConfigSet {
            toml: example.clone(),
        },
    };
    let len = frame_len(&set).unwrap();
    assert!(
        len * 2 <= MAX_FRAME_LEN,
        "the example configuration ({len} bytes framed) leaves room to grow"
    );
    let shown = ResponseEnvelope {
        id: 1,
        body: Response::Config(ConfigText {
            toml: example,
            pending_restart: false,
        }),
    };
    assert!(encode_frame(&shown).is_ok());

    // A stream batch of about STREAM_BATCH_LEN holds a useful number of events.
    let mut batch = EventBatch {
        events: vec![],
        resume_after_id: Some(u64::MAX),
        end: None,
    };
    let envelope = |batch: &EventBatch| ResponseEnvelope {
        id: u32::MAX,
        body: Response::EventBatch(batch.clone()),
    };
    while frame_len(&envelope(&batch)).unwrap() <= STREAM_BATCH_LEN {
        batch
            .events
            .push(event(u64::MAX - batch.events.len() as u64));
    }
    assert!(batch.events.len() > 30, "{} events", batch.events.len());

    // The status reply with every part at its largest (texts at their
    // caps, the RTC's offset and cell and the detector's counts at their
    // extremes) is one small frame.
    let mut largest = status();
    if let Some(last) = largest.update.last.as_mut() {
        last.name = messages::ShortText::new(&"n".repeat(100));
        last.reason = messages::ShortText::new(&"r".repeat(100));
    }
    largest.clock.rtc.offset_s = Some(i64::MIN);
    largest.clock.rtc.cell_mv = Some(u16::MAX);
    largest.detection = Some(messages::DetectionHealth {
        events_cut_at_max: u32::MAX,
        events_joined: u32::MAX,
    });
    let reply = ResponseEnvelope {
        id: u32::MAX,
        body: Response::Status(Box::new(largest)),
    };
    let len = frame_len(&reply).unwrap();
    assert!(len <= 256, "a status reply of {len} bytes framed");
}

#[test]
fn log_levels_are_named_and_ordered_least_verbose_first() {
    for l in LogLevel::ALL {
        assert_eq!(LogLevel::from_name(l.name()), Some(l));
    }
    assert_eq!(LogLevel::from_name("WARN"), Some(LogLevel::Warn));
    assert_eq!(LogLevel::from_name("verbose"), None);
    assert!(LogLevel::Error < LogLevel::Warn && LogLevel::Debug < LogLevel::Trace);
}
