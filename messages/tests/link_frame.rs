//! Field-link framing: the byte layout, resynchronisation after garbage and
//! cut frames, CRC, size limits, and that the decoder's output does not
//! depend on how the bytes were split.

use messages::link::{
    BUNDLE_CHUNK_LEN, BundlePush, CRC_LEN, EventsRequest, FrameDecoder, Hello, LinkError,
    MAX_FRAME_LEN, MAX_PAYLOAD_LEN, MAX_WIRE_FRAME_LEN, PROTOCOL_VERSION, Request, RequestEnvelope,
    encode_frame, frame_len,
};

fn ping(id: u32) -> RequestEnvelope {
    RequestEnvelope {
        id,
        body: Request::Ping,
    }
}

fn hello(id: u32) -> RequestEnvelope {
    RequestEnvelope {
        id,
        body: Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "field-tools test".into(),
        }),
    }
}

fn events(id: u32) -> RequestEnvelope {
    RequestEnvelope {
        id,
        body: Request::Events(EventsRequest {
            after_id: Some(0x1234_5678_9abc),
            since_ms: Some(-5),
            limit: None,
            follow: true,
            credit: 64,
        }),
    }
}

fn chunk(id: u32, len: usize) -> RequestEnvelope {
    RequestEnvelope {
        id,
        body: Request::BundlePush(BundlePush::Chunk {
            offset: 4096,
            // Zeros and 0xFF runs exercise COBS's special cases.
            data: (0..len)
                .map(|i| match i % 600 {
                    0..=299 => 0,
                    300..=559 => 0xFF,
                    _ => i as u8,
                })
                .collect(),
        }),
    }
}

fn frame(message: &RequestEnvelope) -> Vec<u8> {
    encode_frame(message).expect("test messages fit a frame")
}

type Decoded = Vec<Result<RequestEnvelope, LinkError>>;

fn decode_all(bytes: &[u8]) -> Decoded {
    FrameDecoder::<RequestEnvelope>::new().feed(bytes)
}

fn oks(results: &Decoded) -> Vec<RequestEnvelope> {
    results.iter().filter_map(|r| r.clone().ok()).collect()
}

#[test]
fn a_frame_is_cobs_of_payload_and_crc_le_then_a_delimiter() {
    let message = events(7);
    let wire = frame(&message);
    assert_eq!(wire.last(), Some(&0), "ends with the delimiter");
    assert!(
        !wire[..wire.len() - 1].contains(&0),
        "no 0x00 inside a frame"
    );
    let mut decoded = vec![0u8; wire.len()];
    let n = cobs::decode(&wire[..wire.len() - 1], &mut decoded).expect("valid COBS");
    decoded.truncate(n);
    let payload = postcard::to_allocvec(&message).unwrap();
    assert_eq!(&decoded[..payload.len()], &payload[..]);
    assert_eq!(
        &decoded[payload.len()..],
        &crc32fast::hash(&payload).to_le_bytes()[..]
    );
    assert_eq!(frame_len(&message).unwrap(), payload.len() + CRC_LEN);
}

#[test]
fn the_documented_example_frame() {
    // docs/field-link.md, "Frames": Ping with request id 1.
    assert_eq!(
        frame(&ping(1)),
        vec![0x07, 0x01, 0x03, 0x04, 0x72, 0xcb, 0xc1, 0x00]
    );
}

#[test]
fn frames_decode_in_order_and_are_counted() {
    let messages = vec![hello(1), ping(2), events(3), chunk(4, BUNDLE_CHUNK_LEN)];
    let wire: Vec<u8> = messages.iter().flat_map(frame).collect();
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    let results = decoder.feed(&wire);
    assert_eq!(oks(&results), messages);
    assert_eq!(results.len(), messages.len());
    assert_eq!(decoder.stats().frames, 4);
    assert_eq!(decoder.stats().discarded_bytes, 0);
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(decoder.pending_wire_len(), 0);
}

#[test]
fn empty_frames_are_ignored() {
    let mut wire = vec![0, 0, 0];
    wire.extend(frame(&ping(9)));
    wire.extend([0, 0]);
    let results = decode_all(&wire);
    assert_eq!(results, vec![Ok(ping(9))]);
}

#[test]
fn garbage_before_between_and_inside_frames_then_good_frames_decode() {
    // Garbage with zeros in it, and garbage without any (which only ends at
    // the next delimiter).
    let garbage_a: Vec<u8> = vec![0x13, 0x00, 0xFF, 0xFF, 0x02, 0x00, 0x41, 0x42];
    let garbage_b: Vec<u8> = (1..=200u8).collect();

    let mut wire = Vec::new();
    // Before the first frame: the receiver starts listening mid-stream.
    wire.extend(&garbage_a);
    wire.extend(&garbage_b);
    wire.push(0);
    wire.extend(frame(&hello(1)));
    // Between frames.
    wire.extend(&garbage_a);
    wire.push(0);
    wire.extend(frame(&ping(2)));
    // Inside a frame: noise in the middle of events(3) breaks that frame...
    let mut broken = frame(&events(3));
    let middle = broken.len() / 2;
    broken.splice(middle..middle, garbage_b.iter().copied());
    wire.extend(&broken);
    // ...and the next one is intact.
    wire.extend(frame(&ping(4)));

    let results = decode_all(&wire);
    assert_eq!(oks(&results), vec![hello(1), ping(2), ping(4)]);
    let errors: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(!errors.is_empty(), "garbage is reported: {results:?}");
    for e in errors {
        assert!(
            matches!(
                e,
                Err(LinkError::Cobs { .. } | LinkError::Crc { .. } | LinkError::Short { .. })
            ),
            "{e:?}"
        );
    }
}

#[test]
fn a_cut_frame_followed_by_a_good_one() {
    let cut = {
        let f = frame(&chunk(1, 300));
        f[..f.len() / 2].to_vec()
    };

    // The sender wrote 0x00 after the cut (as it does when it reopens its
    // port): only the cut frame is lost.
    let mut wire = cut.clone();
    wire.push(0);
    wire.extend(frame(&ping(2)));
    let results = decode_all(&wire);
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].is_err());
    assert_eq!(results[1], Ok(ping(2)));

    // No delimiter after the cut: the cut frame swallows the next one (one
    // error), and the frame after that decodes.
    let mut wire = cut.clone();
    wire.extend(frame(&ping(2)));
    wire.extend(frame(&ping(3)));
    let results = decode_all(&wire);
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].is_err());
    assert_eq!(results[1], Ok(ping(3)));

    // The receiver's inter-byte timeout dropped the partial frame: nothing
    // is lost but the cut frame.
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    assert!(decoder.feed(&cut).is_empty());
    assert_eq!(decoder.pending_wire_len(), cut.len());
    decoder.reset();
    assert_eq!(decoder.pending_wire_len(), 0);
    assert_eq!(decoder.feed(&frame(&ping(2))), vec![Ok(ping(2))]);
    assert_eq!(decoder.stats().discarded_bytes, cut.len() as u64);
}

#[test]
fn every_single_bit_flip_is_caught() {
    let good = frame(&events(5));
    let next = frame(&ping(6));
    let mut crc_errors = 0;
    for bit in 0..good.len() * 8 {
        let mut damaged = good.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let mut wire = damaged;
        // A flipped delimiter would join the next frame: end it here.
        wire.push(0);
        wire.extend(&next);
        let results = decode_all(&wire);
        assert_eq!(
            oks(&results),
            vec![ping(6)],
            "bit {bit}: only the next frame decodes ({results:?})"
        );
        crc_errors += results
            .iter()
            .filter(|r| matches!(r, Err(LinkError::Crc { .. })))
            .count();
    }
    // Most flips leave valid COBS and are caught by the CRC.
    assert!(crc_errors > good.len() * 4, "{crc_errors} CRC errors");
}

#[test]
fn a_damaged_payload_is_a_crc_error_with_both_values() {
    let message = ping(1);
    let mut payload = postcard::to_allocvec(&message).unwrap();
    let crc = crc32fast::hash(&payload);
    payload[1] ^= 0x40;
    payload.extend(crc.to_le_bytes());
    let mut wire = vec![0u8; payload.len() + 2];
    let n = cobs::try_encode(&payload, &mut wire).unwrap();
    wire.truncate(n);
    wire.push(0);
    let results = decode_all(&wire);
    assert_eq!(
        results,
        vec![Err(LinkError::Crc {
            expected: crc,
            actual: crc32fast::hash(&payload[..payload.len() - CRC_LEN]),
        })]
    );
}

#[test]
fn oversize_input_is_discarded_with_an_error_and_the_decoder_recovers() {
    // A long run without a delimiter (a line stuck at a value, or a peer
    // with a bigger limit): nothing is buffered past the limit.
    let run = vec![0x55u8; 3 * MAX_FRAME_LEN];
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    for piece in run.chunks(1000) {
        assert!(decoder.feed(piece).is_empty());
        assert!(decoder.buffered() <= MAX_FRAME_LEN);
    }
    assert_eq!(decoder.pending_wire_len(), run.len());
    let mut tail = vec![0];
    tail.extend(frame(&ping(2)));
    let results = decoder.feed(&tail);
    assert_eq!(
        results,
        vec![
            Err(LinkError::Oversize {
                discarded: run.len(),
                max: MAX_FRAME_LEN
            }),
            Ok(ping(2)),
        ]
    );
    assert_eq!(decoder.stats().oversize_frames, 1);
    assert_eq!(decoder.stats().discarded_bytes, run.len() as u64);

    // A well-formed frame one byte over the limit is refused the same way.
    let payload = vec![7u8; MAX_FRAME_LEN + 1];
    let mut wire = vec![0u8; MAX_WIRE_FRAME_LEN + 8];
    let n = cobs::try_encode(&payload, &mut wire).unwrap();
    wire.truncate(n);
    wire.push(0);
    wire.extend(frame(&ping(3)));
    let results = decode_all(&wire);
    assert!(
        matches!(results[0], Err(LinkError::Oversize { .. })),
        "{:?}",
        results[0]
    );
    assert_eq!(results[1], Ok(ping(3)));
}

/// Raw bytes as a link message (postcard writes a newtype as its content).
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Blob(Vec<u8>);

impl messages::link::LinkMessage for Blob {}

#[test]
fn the_largest_frame_passes_and_one_byte_more_is_refused() {
    // postcard: a Vec<u8> is a varint length (2 bytes here) and the bytes.
    let largest = vec![0xA5u8; MAX_PAYLOAD_LEN - 2];
    let wire = encode_frame(&largest).expect("fits exactly");
    assert!(wire.len() <= MAX_WIRE_FRAME_LEN);
    assert_eq!(frame_len(&largest).unwrap(), MAX_FRAME_LEN);
    let mut decoder = FrameDecoder::<Blob>::new();
    assert_eq!(decoder.feed(&wire), vec![Ok(Blob(largest.clone()))]);

    let over = vec![0xA5u8; MAX_PAYLOAD_LEN - 1];
    assert_eq!(
        encode_frame(&over),
        Err(LinkError::TooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
    assert!(matches!(
        encode_frame(&chunk(1, MAX_FRAME_LEN)),
        Err(LinkError::TooLarge { .. })
    ));
}

#[test]
fn feeding_one_byte_at_a_time_equals_feeding_whole() {
    let mut wire = vec![0x11, 0x22, 0x00];
    wire.extend(frame(&hello(1)));
    wire.extend(&frame(&chunk(2, 900))[..400]);
    wire.push(0);
    wire.extend(frame(&chunk(3, BUNDLE_CHUNK_LEN)));
    wire.extend(vec![0x33u8; MAX_FRAME_LEN + 50]);
    wire.push(0);
    wire.extend(frame(&events(4)));
    let mut flipped = frame(&ping(5));
    flipped[2] ^= 0x08;
    wire.extend(flipped);
    wire.extend(frame(&ping(6)));
    wire.extend(&frame(&ping(7))[..3]);

    let mut whole = FrameDecoder::<RequestEnvelope>::new();
    let expected = whole.feed(&wire);
    assert_eq!(
        oks(&expected),
        vec![hello(1), chunk(3, BUNDLE_CHUNK_LEN), events(4), ping(6)]
    );

    let mut bytewise = FrameDecoder::<RequestEnvelope>::new();
    let mut got = Vec::new();
    for b in &wire {
        got.extend(bytewise.feed(std::slice::from_ref(b)));
    }
    assert_eq!(got, expected);
    assert_eq!(bytewise.stats(), whole.stats());
    assert_eq!(bytewise.pending_wire_len(), 3, "the cut ping(7) is held");

    // Any other split too.
    for size in [2, 3, 7, 64, 255, 4096] {
        let mut split = FrameDecoder::<RequestEnvelope>::new();
        let got: Decoded = wire.chunks(size).flat_map(|c| split.feed(c)).collect();
        assert_eq!(got, expected, "pieces of {size}");
    }
}

#[test]
fn an_undecodable_request_still_yields_its_id() {
    // What a newer client's request looks like to this build: id 77, then a
    // variant index this build does not know.
    let wire = encode_frame(&(77u32, 200u32)).unwrap();
    let results = decode_all(&wire);
    assert!(
        matches!(&results[..], [Err(LinkError::Decode { id: Some(77), .. })]),
        "{results:?}"
    );

    // Fields a newer minor version appended to a message this build knows
    // are left unread: the message decodes.
    let wire = encode_frame(&(ping(8), 5u8)).unwrap();
    let results = decode_all(&wire);
    assert!(
        matches!(&results[..], [Ok(m)] if *m == ping(8)),
        "{results:?}"
    );
}

#[test]
fn a_frame_shorter_than_its_crc_is_short() {
    // COBS of [1, 2]: valid COBS, 2 decoded bytes.
    let results = decode_all(&[0x03, 0x01, 0x02, 0x00]);
    assert_eq!(results, vec![Err(LinkError::Short { len: 2 })]);
}

#[test]
fn errors_read_well() {
    let decode = LinkError::Decode {
        id: Some(7),
        reason: "unknown variant".into(),
    };
    assert_eq!(
        decode.to_string(),
        "undecodable message (id 7): unknown variant"
    );
    let decode = LinkError::Decode {
        id: None,
        reason: "x".into(),
    };
    assert_eq!(decode.to_string(), "undecodable message: x");
    let crc = LinkError::Crc {
        expected: 1,
        actual: 0xdead_beef,
    };
    assert_eq!(
        crc.to_string(),
        "CRC mismatch: frame says 0x00000001, payload gives 0xdeadbeef"
    );
}
