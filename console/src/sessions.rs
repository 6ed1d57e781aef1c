//! Console sessions: random tokens held in memory (a restart signs everyone
//! out), each naming an access key, ending after the session lifetime; and
//! the slowdown of repeated failed logins from one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// Beyond this many sessions the oldest-expiring are dropped first.
const MAX_SESSIONS: usize = 10_000;

pub(crate) struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<String, (String, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            live: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// A new session for `access_key`; None if the random source failed.
    pub fn create(&self, access_key: &str) -> Option<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).ok()?;
        let token = hex::encode(raw);
        let now = Instant::now();
        let mut live = self.live.lock();
        live.retain(|_, (_, expires)| *expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, (_, e))| *e)
                .map(|(t, _)| t.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(token.clone(), (access_key.to_string(), now + self.ttl));
        Some(token)
    }

    /// The access key of a live session.
    pub fn get(&self, token: &str) -> Option<String> {
        let mut live = self.live.lock();
        match live.get(token) {
            Some((key, expires)) if *expires > Instant::now() => Some(key.clone()),
            Some(_) => {
                live.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, token: &str) {
        self.live.lock().remove(token);
    }

    /// How long a login from `addr` waits before its secret is checked.
    pub fn failure_delay(&self, addr: IpAddr) -> Duration {
        match self.failures.lock().get(&addr) {
            Some((count, last)) if last.elapsed() < FAILURE_MEMORY && *count > 0 => {
                (FIRST_DELAY * 2u32.saturating_pow(count - 1)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, addr: IpAddr) {
        let mut failures = self.failures.lock();
        failures.retain(|_, (_, last)| last.elapsed() < FAILURE_MEMORY);
        let entry = failures.entry(addr).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    pub fn succeeded(&self, addr: IpAddr) {
        self.failures.lock().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end_at_logout() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let token = sessions.create("AKEY").unwrap();
        assert_eq!(sessions.get(&token).as_deref(), Some("AKEY"));
        assert_eq!(sessions.get("forged"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sessions.get(&token), None);
        let token = sessions.create("AKEY").unwrap();
        sessions.remove(&token);
        assert_eq!(sessions.get(&token), None);
    }

    #[test]
    fn each_failed_login_doubles_the_wait_up_to_a_cap() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(sessions.failure_delay(addr), Duration::ZERO);
        sessions.failed(addr);
        assert_eq!(sessions.failure_delay(addr), FIRST_DELAY);
        sessions.failed(addr);
        assert_eq!(sessions.failure_delay(addr), FIRST_DELAY * 2);
        for _ in 0..20 {
            sessions.failed(addr);
        }
        assert_eq!(sessions.failure_delay(addr), MAX_DELAY);
        assert_eq!(
            sessions.failure_delay("192.0.2.8".parse().unwrap()),
            Duration::ZERO
        );
        sessions.succeeded(addr);
        assert_eq!(sessions.failure_delay(addr), Duration::ZERO);
    }
}
