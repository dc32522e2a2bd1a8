//! Which of the caller's messages a PUBACK confirms.
//!
//! rumqttc's `publish()` returns no packet id. Each QoS 1 publish request,
//! taken from its queue in order, shows up exactly once in the event stream as
//! `Outgoing::Publish(pkid)` (written) or `Outgoing::AwaitAck(pkid)` (its
//! packet id is still in flight: it is written later, right after that id's
//! PUBACK, as `Outgoing::Publish(pkid)`). Packet ids are reused as soon as
//! they are acknowledged. So the tracker keeps:
//! - a FIFO of what was handed to the client and not yet seen written;
//! - a map packet id → message for what is written and not acknowledged;
//! - at most one collided message waiting for its packet id.
//!
//! A message is confirmed only by the PUBACK of its own packet id. When the
//! connection drops, [`Tracker::drain`] returns every unconfirmed message.

use std::collections::{HashMap, VecDeque};

/// What a tracked publish is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// A caller's message, by its id.
    Message(u64),
    /// The link's own publish (the retained state).
    Internal,
}

/// The event stream did not match what the tracker expected; the link treats
/// it as a broken connection (everything unconfirmed is reported back).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackError {
    /// A publish was written that nobody handed over.
    #[error("publish with packet id {0} that was never handed to the client")]
    Unexpected(u16),
    /// A packet id was written while already in flight.
    #[error("packet id {0} written twice without an acknowledgement")]
    Reused(u16),
}

/// Correlates packet ids with message ids (see the module docs).
#[derive(Debug, Default)]
pub struct Tracker {
    handed: VecDeque<Tag>,
    in_flight: HashMap<u16, Tag>,
    collided: Option<(u16, Tag)>,
}

impl Tracker {
    /// A publish request was handed to the client.
    pub fn handed(&mut self, tag: Tag) {
        self.handed.push_back(tag);
    }

    /// `Outgoing::Publish(pkid)`.
    pub fn written(&mut self, pkid: u16) -> Result<(), TrackError> {
        let tag = match self.collided {
            Some((p, tag)) if p == pkid => {
                self.collided = None;
                tag
            }
            _ => self
                .handed
                .pop_front()
                .ok_or(TrackError::Unexpected(pkid))?,
        };
        if self.in_flight.insert(pkid, tag).is_some() {
            return Err(TrackError::Reused(pkid));
        }
        Ok(())
    }

    /// `Outgoing::AwaitAck(pkid)`: the next request waits for `pkid`'s PUBACK.
    pub fn collided(&mut self, pkid: u16) -> Result<(), TrackError> {
        let tag = self
            .handed
            .pop_front()
            .ok_or(TrackError::Unexpected(pkid))?;
        self.collided = Some((pkid, tag));
        Ok(())
    }

    /// `Incoming::PubAck(pkid)`: what it confirms, if anything.
    pub fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.in_flight.remove(&pkid)
    }

    /// Messages handed over and not yet confirmed.
    pub fn outstanding(&self) -> usize {
        self.handed.len() + self.in_flight.len() + usize::from(self.collided.is_some())
    }

    /// Forgets everything; returns the caller's unconfirmed message ids, ascending.
    pub fn drain(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .handed
            .drain(..)
            .chain(self.in_flight.drain().map(|(_, t)| t))
            .chain(self.collided.take().map(|(_, t)| t))
            .filter_map(|t| match t {
                Tag::Message(id) => Some(id),
                Tag::Internal => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_confirm_the_message_written_with_that_packet_id() {
        let mut t = Tracker::default();
        t.handed(Tag::Internal);
        t.handed(Tag::Message(10));
        t.handed(Tag::Message(11));
        t.written(1).expect("1");
        t.written(2).expect("2");
        t.written(3).expect("3");
        assert_eq!(t.acked(2), Some(Tag::Message(10)));
        assert_eq!(t.acked(2), None, "an ack confirms once");
        assert_eq!(t.acked(1), Some(Tag::Internal));
        // Packet id 2 is reused for the next message.
        t.handed(Tag::Message(12));
        t.written(2).expect("reuse");
        assert_eq!(t.acked(2), Some(Tag::Message(12)));
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.drain(), vec![11]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_collision_is_written_after_the_ack_of_its_packet_id() {
        let mut t = Tracker::default();
        t.handed(Tag::Message(1));
        t.written(1).expect("w1");
        t.handed(Tag::Message(2));
        t.collided(1).expect("await 1");
        assert_eq!(t.outstanding(), 2);
        // rumqttc yields the PUBACK first, then the collided publish.
        assert_eq!(t.acked(1), Some(Tag::Message(1)));
        t.written(1).expect("collided written");
        assert_eq!(t.acked(1), Some(Tag::Message(2)));
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn drain_reports_everything_unconfirmed_but_internal_publishes() {
        let mut t = Tracker::default();
        t.handed(Tag::Message(5));
        t.handed(Tag::Internal);
        t.handed(Tag::Message(3));
        t.handed(Tag::Message(4));
        t.written(7).expect("w");
        t.written(8).expect("w");
        t.collided(7).expect("c");
        assert_eq!(t.drain(), vec![3, 4, 5]);
    }

    #[test]
    fn inconsistent_streams_are_errors() {
        let mut t = Tracker::default();
        assert_eq!(t.written(1), Err(TrackError::Unexpected(1)));
        t.handed(Tag::Message(1));
        t.handed(Tag::Message(2));
        t.written(1).expect("w");
        assert_eq!(t.written(1), Err(TrackError::Reused(1)));
    }
}
