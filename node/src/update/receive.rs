//! Receiving a bundle over MQTT in pieces (`<prefix>/<node>/update`):
//!
//! ```text
//! announce: 0x01 | the bundle's header (envelope: metadata and signatures)
//! chunk:    0x02 | transfer id (8) | offset (u64 LE) | bytes of the payload
//! ```
//!
//! The transfer id is the first 8 bytes of the SHA-256 of the header. The
//! node keeps `incoming/partial/<id>.part` (the header, then the payload as
//! received, synced after every chunk), so a transfer cut by a lost link or
//! a restart resumes where it stopped: an announce of a transfer in
//! progress reports how much is there, and a chunk that does not start
//! there is answered with the offset expected. A complete bundle is renamed
//! into `incoming/`, where the update task verifies and installs it like
//! any other. Every message is answered on `update/status` with a
//! [`Progress`].

use std::io::Write;
use std::path::{Path, PathBuf};

use models::bundle::Bundle;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Announce message type.
pub const ANNOUNCE: u8 = 1;
/// Chunk message type.
pub const CHUNK: u8 = 2;

/// A progress report, published as JSON on `update/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The transfer id, hex (empty when the message could not be read).
    pub transfer: String,
    /// `model` or `settings`.
    pub kind: String,
    /// The bundle's name.
    pub name: String,
    /// The bundle's version.
    pub version: u64,
    /// Payload bytes received so far: the offset the next chunk must have.
    pub received: u64,
    /// Payload length.
    pub total: u64,
    /// `receiving`, `queued` (complete, handed to the update task) or
    /// `refused`; in a result report ([`super::report`]) the install's
    /// result: `on_trial`, `installed`, `rolled_back`, `refused` or
    /// `deferred`.
    pub state: String,
    /// Why, when refused.
    pub reason: String,
}

/// A check of an announced bundle's metadata before its payload is taken
/// (the node's trust decision, so that a bundle it would refuse is not
/// transferred whole); `Err` is the reason.
pub type AnnounceCheck = Box<dyn Fn(&Bundle) -> Result<(), String> + Send>;

/// The receiving side.
pub struct Receiver {
    incoming: PathBuf,
    cap: u64,
    check: Option<AnnounceCheck>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn refused(reason: impl Into<String>) -> Progress {
    Progress {
        transfer: String::new(),
        kind: String::new(),
        name: String::new(),
        version: 0,
        received: 0,
        total: 0,
        state: "refused".into(),
        reason: reason.into(),
    }
}

impl Receiver {
    /// Receives into `incoming` (the drop folder); bundles over `cap` bytes
    /// are refused at their announce.
    pub fn new(incoming: PathBuf, cap: u64) -> Receiver {
        Receiver {
            incoming,
            cap,
            check: None,
        }
    }

    /// Checks every announce with `check` first.
    pub fn with_check(mut self, check: AnnounceCheck) -> Receiver {
        self.check = Some(check);
        self
    }

    fn partial_dir(&self) -> PathBuf {
        self.incoming.join("partial")
    }

    /// Handles one message of the update topic.
    pub fn on_message(&self, msg: &[u8]) -> Progress {
        match msg.split_first() {
            Some((&ANNOUNCE, header)) => self.announce(header),
            Some((&CHUNK, rest)) => self.chunk(rest),
            _ => refused("not an update message (announce 0x01 or chunk 0x02)"),
        }
    }

    fn announce(&self, header: &[u8]) -> Progress {
        let (bundle, len) = match Bundle::parse_header(header) {
            Ok(b) => b,
            Err(e) => return refused(e.to_string()),
        };
        if len != header.len() {
            return refused("bytes after the header in an announce");
        }
        let id: [u8; 8] = Sha256::digest(header)[..8].try_into().unwrap_or([0; 8]);
        let mut p = Progress {
            transfer: hex(&id),
            kind: bundle.meta.kind.as_str().into(),
            name: bundle.meta.name.clone(),
            version: bundle.meta.version,
            received: 0,
            total: bundle.meta.payload_len,
            state: "receiving".into(),
            reason: String::new(),
        };
        if let Some(check) = &self.check
            && let Err(reason) = check(&bundle)
        {
            p.state = "refused".into();
            p.reason = reason;
            return p;
        }
        let size = header.len() as u64 + bundle.meta.payload_len;
        if size > self.cap {
            p.state = "refused".into();
            p.reason = format!(
                "too_large: {size} bytes, more than the {}-byte limit",
                self.cap
            );
            return p;
        }
        let path = self.partial_dir().join(format!("{}.part", p.transfer));
        match std::fs::read(&path) {
            Ok(bytes) if bytes.starts_with(header) => {
                p.received = (bytes.len() - header.len()) as u64;
                if p.received > 0 && p.received < p.total {
                    tracing::info!(
                        transfer = %p.transfer,
                        received = p.received,
                        total = p.total,
                        "update transfer resumed"
                    );
                }
            }
            _ => {
                if let Err(e) = uplink::store::durable::create_dir_durably(&self.partial_dir())
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        uplink::store::durable::replace_atomically(&path, header)
                            .map_err(|e| e.to_string())
                    })
                {
                    p.state = "refused".into();
                    p.reason = format!("io: {e}");
                    return p;
                }
            }
        }
        self.complete_if_done(&path, header.len(), p)
    }

    fn chunk(&self, rest: &[u8]) -> Progress {
        if rest.len() < 16 {
            return refused("chunk shorter than its header");
        }
        let transfer = hex(&rest[..8]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&rest[8..16]);
        let offset = u64::from_le_bytes(off);
        let data = &rest[16..];
        let path = self.partial_dir().join(format!("{transfer}.part"));
        // The header and the file's length; the payload received so far is
        // not read again.
        let Ok((head, file_len)) = read_head(&path) else {
            let mut p = refused("unknown transfer: announce it first");
            p.transfer = transfer;
            return p;
        };
        let Ok((bundle, header_len)) = Bundle::parse_header(&head) else {
            let _ = std::fs::remove_file(&path);
            let mut p = refused("damaged partial file; announce again");
            p.transfer = transfer;
            return p;
        };
        let mut p = Progress {
            transfer,
            kind: bundle.meta.kind.as_str().into(),
            name: bundle.meta.name.clone(),
            version: bundle.meta.version,
            received: file_len.saturating_sub(header_len as u64),
            total: bundle.meta.payload_len,
            state: "receiving".into(),
            reason: String::new(),
        };
        if offset != p.received {
            // Not where the file ends: the sender resends from `received`.
            return p;
        }
        if p.received + data.len() as u64 > p.total {
            p.state = "refused".into();
            p.reason = "more bytes than the announced payload".into();
            let _ = std::fs::remove_file(&path);
            return p;
        }
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.sync_data()
            });
        if let Err(e) = appended {
            p.state = "refused".into();
            p.reason = format!("io: {e}");
            return p;
        }
        p.received += data.len() as u64;
        self.complete_if_done(&path, header_len, p)
    }

    /// A complete transfer moves into the drop folder.
    fn complete_if_done(&self, path: &Path, header_len: usize, mut p: Progress) -> Progress {
        if p.received < p.total {
            return p;
        }
        let dest = self.incoming.join(format!(
            "{}-{}-{:020}-mqtt.fnb",
            p.kind,
            p.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            p.version
        ));
        let moved = std::fs::rename(path, &dest)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                uplink::store::durable::sync_dir(&self.incoming).map_err(|e| e.to_string())
            });
        match moved {
            Ok(()) => {
                tracing::info!(transfer = %p.transfer, version = p.version, bytes = p.total as usize + header_len, "update received over MQTT; queued");
                p.state = "queued".into();
            }
            Err(e) => {
                p.state = "refused".into();
                p.reason = format!("io: {e}");
            }
        }
        p
    }
}

/// The first bytes of a partial file (as many as a header can take) and
/// the file's length.
fn read_head(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    f.take(models::bundle::envelope::MAX_LEN as u64)
        .read_to_end(&mut head)?;
    Ok((head, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::bundle::Metadata;

    fn bundle(payload: &[u8]) -> Vec<u8> {
        let meta = Metadata::settings("settings", 4, 1, 2, [0, 0, 0]);
        Bundle::new(meta, payload.to_vec()).to_bytes().unwrap()
    }

    fn chunk(id: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut m = vec![CHUNK];
        for i in 0..8 {
            m.push(u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap());
        }
        m.extend_from_slice(&offset.to_le_bytes());
        m.extend_from_slice(data);
        m
    }

    #[test]
    fn a_transfer_resumes_after_a_restart_and_lands_whole_in_the_drop_folder() {
        let t = tempfile::tempdir().unwrap();
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let file = bundle(&payload);
        let (_, header_len) = Bundle::parse_header(&file).unwrap();
        let header = &file[..header_len];
        let mut announce = vec![ANNOUNCE];
        announce.extend_from_slice(header);

        let r = Receiver::new(t.path().to_path_buf(), 1 << 20);
        let p = r.on_message(&announce);
        assert_eq!(
            (p.state.as_str(), p.received, p.total),
            ("receiving", 0, 5000)
        );
        let id = p.transfer.clone();
        assert_eq!(
            r.on_message(&chunk(&id, 0, &payload[..2000])).received,
            2000
        );
        // A chunk from elsewhere is not taken: the answer says where to go on.
        let p = r.on_message(&chunk(&id, 3000, &payload[3000..4000]));
        assert_eq!((p.state.as_str(), p.received), ("receiving", 2000));

        // The node restarts: the transfer resumes at 2000.
        let r = Receiver::new(t.path().to_path_buf(), 1 << 20);
        assert_eq!(r.on_message(&announce).received, 2000);
        assert_eq!(
            r.on_message(&chunk(&id, 2000, &payload[2000..4500]))
                .received,
            4500
        );
        let p = r.on_message(&chunk(&id, 4500, &payload[4500..]));
        assert_eq!(p.state, "queued", "{p:?}");
        let queued = crate::update::task::pending(t.path());
        assert_eq!(queued.len(), 1);
        assert_eq!(std::fs::read(&queued[0]).unwrap(), file);
        assert!(
            std::fs::read_dir(t.path().join("partial"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn an_announce_the_check_refuses_is_not_received() {
        let t = tempfile::tempdir().unwrap();
        let file = bundle(&[1u8; 100]);
        let (_, header_len) = Bundle::parse_header(&file).unwrap();
        let mut announce = vec![ANNOUNCE];
        announce.extend_from_slice(&file[..header_len]);
        let r = Receiver::new(t.path().to_path_buf(), 1 << 20).with_check(Box::new(|b| {
            Err(format!("signatures: version {}", b.meta.version))
        }));
        let p = r.on_message(&announce);
        assert_eq!(
            (p.state.as_str(), p.reason.as_str()),
            ("refused", "signatures: version 4")
        );
        assert!(!t.path().join("partial").exists());
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let t = tempfile::tempdir().unwrap();
        let r = Receiver::new(t.path().to_path_buf(), 100);
        assert_eq!(r.on_message(b"").state, "refused");
        assert_eq!(r.on_message(&[9, 1, 2]).state, "refused");
        assert_eq!(r.on_message(&[ANNOUNCE, b'F', b'N']).state, "refused");
        assert_eq!(
            r.on_message(&chunk("0011223344556677", 0, b"x")).state,
            "refused"
        );
        // Over the cap at the announce.
        let file = bundle(&[0u8; 500]);
        let (_, header_len) = Bundle::parse_header(&file).unwrap();
        let mut announce = vec![ANNOUNCE];
        announce.extend_from_slice(&file[..header_len]);
        let p = r.on_message(&announce);
        assert_eq!(p.state, "refused");
        assert!(p.reason.starts_with("too_large"), "{}", p.reason);
        // More bytes than announced.
        let r = Receiver::new(t.path().to_path_buf(), 1 << 20);
        let id = r.on_message(&announce).transfer;
        let p = r.on_message(&chunk(&id, 0, &[0u8; 501]));
        assert_eq!(p.state, "refused");
    }
}
