//! Seeded random input for the field-link decoder: streams of good frames
//! mixed with garbage, cut, damaged and oversize frames, split at random;
//! random bytes; random and mutated payloads behind a correct CRC (so that
//! postcard's decoding is exercised, not only the CRC). The decoder must
//! never panic, never hold more than `MAX_FRAME_LEN` bytes, and lose no
//! intact frame that follows a delimiter.
//!
//! `LINK_FUZZ_ITERATIONS` sets the rounds (default 3000), e.g.
//! `LINK_FUZZ_ITERATIONS=200000 cargo test --release -p messages --test link_fuzz`.

use messages::link::{
    BUNDLE_CHUNK_LEN, BundlePush, CRC_LEN, EventsRequest, FrameDecoder, LinkError, MAX_FRAME_LEN,
    Request, RequestEnvelope, ResponseEnvelope, encode_frame,
};

/// xorshift64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn nonzero_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.below(255) + 1) as u8).collect()
    }
}

fn iterations() -> u64 {
    std::env::var("LINK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn random_request(rng: &mut Rng) -> RequestEnvelope {
    let id = rng.next() as u32;
    let body = match rng.below(6) {
        0 => Request::Ping,
        1 => Request::Credit {
            stream: rng.next() as u32,
            items: rng.next() as u32,
        },
        2 => Request::Events(EventsRequest {
            after_id: (rng.below(2) == 0).then(|| rng.next()),
            since_ms: (rng.below(2) == 0).then(|| rng.next() as i64),
            limit: (rng.below(2) == 0).then(|| rng.next() as u32),
            follow: rng.below(2) == 0,
            credit: rng.below(1000) as u32,
        }),
        3 => {
            let len = rng.below(BUNDLE_CHUNK_LEN as u64 + 1) as usize;
            Request::BundlePush(BundlePush::Chunk {
                offset: rng.next(),
                data: rng.bytes(len),
            })
        }
        4 => {
            let len = rng.below(400) as usize;
            Request::ConfigSet {
                toml: (0..len)
                    .map(|_| char::from(b' ' + rng.below(95) as u8))
                    .collect(),
            }
        }
        _ => Request::TimeSet {
            unix_ms: rng.next() as i64,
            uncertainty_ms: rng.next() as u32,
        },
    };
    RequestEnvelope { id, body }
}

fn frame(message: &RequestEnvelope) -> Vec<u8> {
    encode_frame(message).expect("random requests fit a frame")
}

/// Feeds `wire` in random pieces, checking the bound after every piece.
fn feed_randomly<T: messages::link::LinkMessage>(
    rng: &mut Rng,
    decoder: &mut FrameDecoder<T>,
    wire: &[u8],
) -> Vec<Result<T, LinkError>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let max = match rng.below(3) {
            0 => 1,
            1 => 64,
            _ => 5000,
        };
        let n = (rng.below(max) as usize + 1).min(rest.len());
        out.extend(decoder.feed(&rest[..n]));
        rest = &rest[n..];
        assert!(decoder.buffered() <= MAX_FRAME_LEN, "buffer bound");
    }
    out
}

#[test]
fn random_streams_lose_only_damaged_frames() {
    let mut rng = Rng(0x5EED_F1E1_D11C_0001);
    for round in 0..iterations() {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..rng.below(8) + 1 {
            match rng.below(10) {
                // Intact frames, after a delimiter (which a sender may
                // always write): these must all come out.
                0..=3 => {
                    let message = random_request(&mut rng);
                    wire.push(0);
                    wire.extend(frame(&message));
                    expected.push(message);
                }
                // Line noise, zeros included.
                4 | 5 => {
                    let len = rng.below(300) as usize;
                    wire.extend(rng.bytes(len));
                }
                // A frame cut short (cable pulled, sender killed), at
                // least one byte before its delimiter (a frame missing
                // only its delimiter is whole once any 0x00 follows).
                6 => {
                    let f = frame(&random_request(&mut rng));
                    let cut = rng.below(f.len() as u64 - 1) as usize;
                    wire.extend(&f[..cut]);
                }
                // A frame with one bit flipped.
                7 | 8 => {
                    let mut f = frame(&random_request(&mut rng));
                    let bit = rng.below(f.len() as u64 * 8) as usize;
                    f[bit / 8] ^= 1 << (bit % 8);
                    wire.extend(f);
                }
                // A run without a delimiter, sometimes past the limit.
                _ => {
                    let len = if rng.below(8) == 0 {
                        MAX_FRAME_LEN + rng.below(MAX_FRAME_LEN as u64) as usize
                    } else {
                        rng.below(2000) as usize
                    };
                    wire.extend(rng.nonzero_bytes(len));
                }
            }
        }
        wire.push(0);

        let mut decoder = FrameDecoder::<RequestEnvelope>::new();
        let results = feed_randomly(&mut rng, &mut decoder, &wire);
        let decoded: Vec<_> = results.iter().filter_map(|r| r.clone().ok()).collect();
        assert_eq!(decoded, expected, "round {round}");
        assert_eq!(decoder.stats().frames, expected.len() as u64);
        assert_eq!(decoder.pending_wire_len(), 0, "ends on a delimiter");
        assert_eq!(decoder.buffered(), 0);
    }
}

#[test]
fn random_bytes_never_panic_and_stay_bounded() {
    let mut rng = Rng(0x0BAD_CAB1_E000_0002);
    for _ in 0..iterations() {
        let max_len = if rng.below(10) == 0 { 40_000 } else { 2_000 };
        let len = rng.below(max_len) as usize;
        // From mostly zeros to no zeros at all.
        let zero_per_mille = [0, 1, 4, 50, 500][rng.below(5) as usize];
        let wire: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(1000) < zero_per_mille {
                    0
                } else {
                    (rng.below(255) + 1) as u8
                }
            })
            .collect();
        let mut requests = FrameDecoder::<RequestEnvelope>::new();
        let _ = feed_randomly(&mut rng, &mut requests, &wire);
        let mut responses = FrameDecoder::<ResponseEnvelope>::new();
        let _ = feed_randomly(&mut rng, &mut responses, &wire);
    }
}

/// Frames `payload` as a sender would, with a correct CRC.
fn frame_payload(payload: &[u8]) -> Vec<u8> {
    let mut decoded = payload.to_vec();
    decoded.extend(crc32fast::hash(payload).to_le_bytes());
    let mut wire = vec![0u8; decoded.len() + decoded.len() / 254 + 2];
    let n = cobs::try_encode(&decoded, &mut wire).expect("sized for COBS");
    wire.truncate(n);
    wire.push(0);
    wire
}

#[test]
fn random_and_mutated_payloads_behind_a_good_crc_never_panic() {
    let mut rng = Rng(0xC0FF_EE00_1234_0003);
    for _ in 0..iterations() {
        let payload = if rng.below(2) == 0 {
            let len = rng.below(200) as usize;
            rng.bytes(len)
        } else {
            // A real request with a few bytes changed, cut or extended: the
            // decoder reaches deep into the message before it fails.
            let mut p = postcard::to_allocvec(&random_request(&mut rng)).expect("encodes");
            for _ in 0..rng.below(4) + 1 {
                match rng.below(3) {
                    0 if !p.is_empty() => {
                        let i = rng.below(p.len() as u64) as usize;
                        p[i] = rng.next() as u8;
                    }
                    1 => p.truncate(rng.below(p.len() as u64 + 1) as usize),
                    _ => p.push(rng.next() as u8),
                }
            }
            p
        };
        if payload.len() + CRC_LEN > MAX_FRAME_LEN {
            continue;
        }
        let wire = frame_payload(&payload);
        let mut requests = FrameDecoder::<RequestEnvelope>::new();
        for r in requests.feed(&wire) {
            assert!(
                matches!(r, Ok(_) | Err(LinkError::Decode { .. })),
                "a good CRC leaves only decoding to fail: {r:?}"
            );
        }
        let mut responses = FrameDecoder::<ResponseEnvelope>::new();
        for r in responses.feed(&wire) {
            assert!(matches!(r, Ok(_) | Err(LinkError::Decode { .. })), "{r:?}");
        }
    }
}
