//! Resident memory of a process that keeps appending to the store:
//! `store` appends events one at a time through `EventStore` (as the node
//! does), `sled` writes the same keys straight into a bare sled tree with
//! the same cache. Prints VmRSS every EVERY items. `SLED_CACHE` sets the
//! page cache (`cache_capacity_bytes`), default the store's.
//!
//!     cargo run --release -p uplink --example store_memory -- store|sled ITEMS EVERY

use messages::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rec(id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: "demo-node".into(),
        start_ms: 1_780_000_000_000 + id as i64 * 1000,
        duration_ms: 1500,
        class: EventClass::Wildlife,
        confidence: Permille(800),
        scores: ModalityScores {
            audio: Some(Permille(900)),
            camera: Some(Permille(400)),
            climate: Some(Permille(0)),
        },
        features: KeyFeatures {
            audio_peak_hz: Some(3100),
            ..KeyFeatures::default()
        },
        model: ModelVersion(10),
        time: Default::default(),
        mono: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("store");
    let n: u64 = args.get(2).map_or(Ok(20_000), |s| s.parse())?;
    let every: u64 = args.get(3).map_or(Ok(2_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let mut cfg = uplink::StoreConfig::default();
    if let Some(c) = std::env::var("SLED_CACHE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.cache_capacity_bytes = c;
    }
    println!("items rss_kib mode={mode}");
    println!("0 {}", rss_kib());
    match mode {
        "store" => {
            let (store, _) = uplink::EventStore::open(&dir.path().join("store"), &cfg)?;
            for i in 1..=n {
                store.append(rec)?;
                if i % every == 0 {
                    println!("{i} {}", rss_kib());
                }
            }
        }
        _ => {
            let db = sled::Config::new()
                .path(dir.path().join("sled"))
                .cache_capacity(cfg.cache_capacity_bytes)
                .open()?;
            for i in 1..=n {
                let bytes = messages::encode_event(&rec(i));
                let mut b = sled::Batch::default();
                let mut k = vec![b'e'];
                k.extend_from_slice(&i.to_be_bytes());
                b.insert(k, bytes);
                let mut q = vec![b'q', 2];
                q.extend_from_slice(&i.to_be_bytes());
                b.insert(q, vec![0u8; 12]);
                b.insert(b"m:stats".to_vec(), i.to_le_bytes().to_vec());
                db.apply_batch(b)?;
                db.flush()?;
                if i % every == 0 {
                    println!("{i} {}", rss_kib());
                }
            }
        }
    }
    Ok(())
}
