//! A broker's lease on leadership.
//!
//! The controller fences a broker it has not heard from for the session
//! timeout, counted from when a heartbeat *arrived*. The broker counts its
//! lease from when that heartbeat was *sent*, which is no later, so with
//! clocks that run at the same rate its lease ends before the controller can
//! fence it and elect another leader: a broker cut off from the controller
//! stops acknowledging writes and exposing its high watermark before anyone
//! else leads. Safety does not rest on this (followers refuse stale leader
//! epochs and an ISR shrink counts only once committed); the lease keeps a
//! zombie leader from acknowledging anything once it is fenced.

use crate::Millis;

/// When this broker last knew itself alive to the controller.
#[derive(Clone, Copy, Debug)]
pub struct BrokerLease {
    session_timeout: Millis,
    /// Send time of the newest heartbeat the controller accepted.
    sent_at: Option<Millis>,
}

impl BrokerLease {
    /// No lease yet (the broker has not registered).
    pub fn new(session_timeout: Millis) -> Self {
        Self {
            session_timeout,
            sent_at: None,
        }
    }

    /// The controller accepted a registration or heartbeat this broker sent
    /// at `sent_at` (echoed in the reply, so a late duplicate of an old
    /// reply extends nothing).
    pub fn renewed(&mut self, sent_at: Millis) {
        self.sent_at = Some(self.sent_at.map_or(sent_at, |s| s.max(sent_at)));
    }

    /// The controller said this broker is fenced: lead nothing until it
    /// registers again.
    pub fn revoke(&mut self) {
        self.sent_at = None;
    }

    /// When the lease ends (0 if there is none): what
    /// [`crate::replica::Replica::set_lease`] takes.
    pub fn expires_at(&self) -> Millis {
        self.sent_at
            .map_or(0, |s| s.saturating_add(self.session_timeout))
    }

    /// Whether the broker may act as a leader at `now`.
    pub fn valid(&self, now: Millis) -> bool {
        self.sent_at
            .is_some_and(|s| now < s.saturating_add(self.session_timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_the_send_time_and_old_replies_do_not_extend_it() {
        let mut lease = BrokerLease::new(1_000);
        assert!(!lease.valid(0));
        lease.renewed(500);
        assert!(lease.valid(1_499) && !lease.valid(1_500));
        lease.renewed(100);
        assert!(!lease.valid(1_500), "a late reply to an older heartbeat");
        lease.revoke();
        assert!(!lease.valid(600));
    }
}
