//! `field-tools pull` as a researcher runs it: a persistent session, JSON
//! lines appended to a file, until the broker has been idle a while.

use std::path::Path;
use std::time::Duration;

use field_tools::pull::{PullFormat, PullOptions, Sink, pull, read_seen};
use uplink::mqtt::TlsFiles;

/// Pulls every node's records from `broker` (an `mqtts://` URL) into `out`
/// as session `client_id`, until nothing arrives for `idle`; the number of
/// duplicates dropped.
pub fn pull_jsonl(broker: &str, tls: TlsFiles, client_id: &str, out: &Path, idle: Duration) -> u64 {
    let opts = PullOptions {
        broker: broker.to_string(),
        tls: Some(tls),
        prefix: "field".into(),
        node: "all".into(),
        since_ms: None,
        format: PullFormat::Jsonl,
        client_id: client_id.into(),
        idle_exit: Some(idle),
    };
    let (seen, header) = read_seen(out, PullFormat::Jsonl).expect("read out");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("open out");
    let mut sink = Sink::new(file, PullFormat::Jsonl, None, seen, header);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(pull(&opts, &mut sink)).expect("pull");
    sink.summary.duplicates
}
