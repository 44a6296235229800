//! Each instance's copy of the revocation list (revoked JTIs, per-user cut-offs) and of the
//! opaque keys it has seen, so a check needs no network hop. Exactness comes first: the copy is
//! trusted only while it provably holds every revocation, i.e. it has applied every sequence
//! number up to SQL's (no gap older than [`GAP_GRACE`]), it is not over its cap and (with Redis)
//! its subscription is up. Otherwise checks take the Redis/SQL path until a resync.
use std::collections::{BTreeSet, HashMap};
use std::sync::{
    RwLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::opaque::OpaqueToken;

/// How long a missing sequence number may be awaited (messages of concurrent writers cross on
/// the way) before the copy stops being trusted and resyncs.
pub const GAP_GRACE: Duration = Duration::from_millis(200);

/// One security event: what every instance applies on receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Revoked JTIs with their expiry (unix seconds).
    Jtis { jtis: Vec<(String, i64)> },
    /// Tokens of `user` issued before `cutoff` are refused until `until` (unix seconds).
    Cutoff { user: Uuid, cutoff: i64, until: i64 },
    /// Opaque keys deleted: these hashes, or every key of `user`.
    Keys {
        hashes: Vec<String>,
        user: Option<Uuid>,
    },
}

impl Event {
    /// The event of `RevocationStore::revoke`.
    pub fn revoked(jtis: &[crate::domain::revocation::RevokedJti]) -> Self {
        Event::Jtis {
            jtis: jtis
                .iter()
                .map(|r| (r.jti.clone(), r.expires_at.timestamp()))
                .collect(),
        }
    }

    /// The event of `RevocationStore::revoke_user`.
    pub fn cutoff(user: Uuid, cutoff: i64, until: chrono::DateTime<Utc>) -> Self {
        Event::Cutoff {
            user,
            cutoff,
            until: until.timestamp(),
        }
    }
}

/// An event with the revocation sequence number SQL gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub seq: i64,
    pub event: Event,
}

#[derive(Default)]
struct Lists {
    jtis: HashMap<String, i64>,
    cutoffs: HashMap<Uuid, (i64, i64)>,
    /// Every sequence number up to here is applied.
    seen: i64,
    /// Applied numbers above `seen` (their predecessors are still on the way).
    ahead: BTreeSet<i64>,
    gap_since: Option<Instant>,
    /// Loaded from SQL at least once.
    loaded: bool,
    /// More entries than the cap: not trusted until pruning makes room and a resync runs.
    overflow: bool,
}

pub struct Mirror {
    lists: RwLock<Lists>,
    keys: RwLock<HashMap<String, OpaqueToken>>,
    /// Bumped by every key drop and resync: a key read from SQL before one is not cached after.
    key_epoch: AtomicU64,
    /// The subscription is up (always true without Redis: this process is the only writer).
    listening: AtomicBool,
    cap: usize,
    key_cap: usize,
}

impl Mirror {
    pub fn new(cap: usize, key_cap: usize, listening: bool) -> Self {
        Self {
            lists: RwLock::new(Lists::default()),
            keys: RwLock::new(HashMap::new()),
            key_epoch: AtomicU64::new(0),
            listening: AtomicBool::new(listening),
            cap,
            key_cap,
        }
    }

    fn trusted(&self, lists: &Lists) -> bool {
        lists.loaded
            && !lists.overflow
            && self.listening.load(Ordering::SeqCst)
            && lists.gap_since.is_none_or(|t| t.elapsed() < GAP_GRACE)
    }

    /// Whether the copy can answer now.
    pub fn is_trusted(&self) -> bool {
        self.lists.read().is_ok_and(|l| self.trusted(&l))
    }

    /// The answer from memory, or None when the copy cannot be trusted now.
    pub fn check(&self, jti: Option<&str>, user: Option<Uuid>, iat: i64) -> Option<bool> {
        let lists = self.lists.read().ok()?;
        if !self.trusted(&lists) {
            return None;
        }
        let now = Utc::now().timestamp();
        let revoked = jti.is_some_and(|j| lists.jtis.get(j).is_some_and(|exp| *exp >= now));
        let cut = user.is_some_and(|u| {
            lists
                .cutoffs
                .get(&u)
                .is_some_and(|(cutoff, until)| *until >= now && iat < *cutoff)
        });
        Some(revoked || cut)
    }

    /// Applies an event. Its entries count at once (more revocations are always safe); the
    /// sequence number only advances `seen` once every number before it has come.
    pub fn apply(&self, message: &Message) {
        if let Event::Keys { hashes, user } = &message.event {
            self.drop_keys(hashes, *user);
        }
        let Ok(mut lists) = self.lists.write() else {
            return;
        };
        match &message.event {
            Event::Jtis { jtis } => {
                for (jti, exp) in jtis {
                    lists.jtis.insert(jti.clone(), *exp);
                }
            }
            Event::Cutoff {
                user,
                cutoff,
                until,
            } => {
                let entry = lists.cutoffs.entry(*user).or_insert((*cutoff, *until));
                entry.0 = entry.0.max(*cutoff);
                entry.1 = entry.1.max(*until);
            }
            Event::Keys { .. } => {}
        }
        if lists.jtis.len() + lists.cutoffs.len() > self.cap && !lists.overflow {
            tracing::warn!(
                cap = self.cap,
                "the in-memory revocation list is full: checks use Redis/SQL until it has room"
            );
            lists.overflow = true;
        }
        let seq = message.seq;
        if seq <= lists.seen {
            return;
        }
        if seq == lists.seen + 1 {
            lists.seen = seq;
            let mut next = seq + 1;
            while lists.ahead.remove(&next) {
                lists.seen = next;
                next += 1;
            }
            if lists.ahead.is_empty() {
                lists.gap_since = None;
            }
        } else {
            lists.ahead.insert(seq);
            lists.gap_since.get_or_insert_with(Instant::now);
        }
    }

    /// Not loaded, a gap that outlived its grace, or room again after an overflow. (SQL ahead
    /// of the copy is the heartbeat's to judge: a message may still be on its way.)
    pub fn needs_resync(&self) -> bool {
        self.lists.read().is_ok_and(|l| {
            !l.loaded
                || l.gap_since.is_some_and(|t| t.elapsed() >= GAP_GRACE)
                || (l.overflow && l.jtis.len() + l.cutoffs.len() < self.cap * 9 / 10)
        })
    }

    /// The highest sequence number applied without gaps.
    pub fn seen(&self) -> i64 {
        self.lists.read().map_or(0, |l| l.seen)
    }

    /// Stops trusting the copy (a dropped subscription) and forgets cached keys.
    pub fn distrust(&self) {
        self.listening.store(false, Ordering::SeqCst);
        if let Ok(mut lists) = self.lists.write() {
            lists.loaded = false;
        }
        self.clear_keys();
    }

    pub fn listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Replaces the lists with SQL's as of sequence `seq` (read before the entries), keeping
    /// what arrived meanwhile: entries are only ever added, and `seen` becomes `seq` or more.
    pub fn load(&self, seq: i64, jtis: Vec<(String, i64)>, cutoffs: Vec<(Uuid, i64, i64)>) {
        self.clear_keys();
        let Ok(mut lists) = self.lists.write() else {
            return;
        };
        let now = Utc::now().timestamp();
        lists.jtis.retain(|_, exp| *exp >= now);
        lists.cutoffs.retain(|_, (_, until)| *until >= now);
        lists.jtis.extend(jtis);
        for (user, cutoff, until) in cutoffs {
            let entry = lists.cutoffs.entry(user).or_insert((cutoff, until));
            entry.0 = entry.0.max(cutoff);
            entry.1 = entry.1.max(until);
        }
        lists.overflow = lists.jtis.len() + lists.cutoffs.len() > self.cap;
        lists.seen = lists.seen.max(seq);
        let seen = lists.seen;
        lists.ahead.retain(|s| *s > seen);
        let mut next = lists.seen + 1;
        while lists.ahead.remove(&next) {
            lists.seen = next;
            next += 1;
        }
        // What is still ahead is beyond SQL's sequence when it was read: either on its way
        // (its data is applied; the heartbeat finds SQL ahead if a number is really missing)
        // or not a real number at all. Waiting for it would never end.
        lists.ahead.clear();
        lists.gap_since = None;
        lists.loaded = true;
    }

    /// Forgets expired entries.
    pub fn prune(&self) {
        let now = Utc::now().timestamp();
        if let Ok(mut lists) = self.lists.write() {
            lists.jtis.retain(|_, exp| *exp >= now);
            lists.cutoffs.retain(|_, (_, until)| *until >= now);
        }
    }

    /// Entries held: (JTIs, cut-offs, keys).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let (j, c) = self
            .lists
            .read()
            .map_or((0, 0), |l| (l.jtis.len(), l.cutoffs.len()));
        (j, c, self.keys.read().map_or(0, |k| k.len()))
    }

    // Opaque keys: a positive cache, used only while the lists are trusted (key drops travel
    // with the same sequence numbers).

    /// The cached row of a key, when the copy can be trusted.
    pub fn key(&self, hash: &str) -> Option<OpaqueToken> {
        if !self.is_trusted() {
            return None;
        }
        self.keys.read().ok()?.get(hash).cloned()
    }

    /// The epoch to pass to [`Mirror::remember_key`] for a row about to be read from SQL.
    pub fn key_epoch(&self) -> u64 {
        self.key_epoch.load(Ordering::SeqCst)
    }

    /// Caches a row read from SQL, unless a drop or resync happened since `epoch`.
    pub fn remember_key(&self, row: &OpaqueToken, epoch: u64) {
        let Ok(mut keys) = self.keys.write() else {
            return;
        };
        if self.key_epoch.load(Ordering::SeqCst) != epoch || keys.len() >= self.key_cap {
            return;
        }
        keys.insert(row.key_sha256.clone(), row.clone());
    }

    pub fn drop_keys(&self, hashes: &[String], user: Option<Uuid>) {
        self.key_epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut keys) = self.keys.write() {
            for h in hashes {
                keys.remove(h);
            }
            if let Some(user) = user {
                keys.retain(|_, row| row.user_id != user);
            }
        }
        self.key_epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn clear_keys(&self) {
        self.key_epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jti(seq: i64, name: &str) -> Message {
        Message {
            seq,
            event: Event::Jtis {
                jtis: vec![(name.into(), Utc::now().timestamp() + 60)],
            },
        }
    }

    #[test]
    fn trusted_only_once_loaded_and_while_every_number_has_come() {
        let m = Mirror::new(100, 10, true);
        assert_eq!(m.check(Some("a"), None, 0), None, "not loaded");
        m.load(5, vec![], vec![]);
        assert_eq!(m.check(Some("a"), None, 0), Some(false));
        m.apply(&jti(6, "a"));
        assert_eq!(m.check(Some("a"), None, 0), Some(true));
        // 8 before 7: its entry counts at once, and the gap is waited for briefly.
        m.apply(&jti(8, "c"));
        assert_eq!(m.check(Some("c"), None, 0), Some(true));
        assert_eq!(m.seen(), 6);
        std::thread::sleep(GAP_GRACE);
        assert_eq!(m.check(Some("x"), None, 0), None, "a lost message");
        assert!(m.needs_resync());
        m.apply(&jti(7, "b"));
        assert_eq!(m.seen(), 8);
        assert_eq!(m.check(Some("b"), None, 0), Some(true));
        assert!(!m.needs_resync(), "the gap closed");
        m.distrust();
        assert_eq!(m.check(Some("b"), None, 0), None);
    }

    #[test]
    fn cutoffs_only_move_forward_and_the_cap_never_forgets() {
        let m = Mirror::new(3, 10, true);
        m.load(0, vec![], vec![]);
        let user = Uuid::now_v7();
        let until = Utc::now().timestamp() + 60;
        for (seq, cutoff) in [(1, 200), (2, 100)] {
            m.apply(&Message {
                seq,
                event: Event::Cutoff {
                    user,
                    cutoff,
                    until,
                },
            });
        }
        assert_eq!(m.check(None, Some(user), 150), Some(true));
        assert_eq!(m.check(None, Some(user), 200), Some(false));
        for (seq, name) in [(3, "a"), (4, "b"), (5, "c")] {
            m.apply(&jti(seq, name));
        }
        assert_eq!(
            m.check(Some("a"), None, 0),
            None,
            "over the cap: not trusted"
        );
    }

    #[test]
    fn keys_read_before_a_drop_are_not_cached() {
        let m = Mirror::new(10, 10, true);
        m.load(0, vec![], vec![]);
        let row = OpaqueToken {
            key_sha256: "h".into(),
            user_id: Uuid::now_v7(),
            nonce: String::new(),
            name: String::new(),
            created_at: Utc::now(),
            last_used_at: None,
            expires_at: None,
            credential_version: 0,
        };
        let epoch = m.key_epoch();
        m.apply(&Message {
            seq: 1,
            event: Event::Keys {
                hashes: vec![],
                user: Some(row.user_id),
            },
        });
        m.remember_key(&row, epoch);
        assert!(m.key("h").is_none());
        m.remember_key(&row, m.key_epoch());
        assert!(m.key("h").is_some());
        m.drop_keys(&[], Some(row.user_id));
        assert!(m.key("h").is_none());
    }
}
