//! The edge's abuse controls as its maps hold them (`bpf/lib/abuse.h`): the deny and allow lists
//! merged into one LPM trie, their replacement while the program runs, and the budgets' buckets.
//!
//! **One trie for both lists.** Each entry is one listed prefix with the flags of every listed
//! prefix containing it (a deny prefix inside an allow prefix carries both; deny wins), so the
//! longest match answers "is the client in any deny prefix, in any allow prefix" in one lookup,
//! as `ClientLists::classify` asks it.
//!
//! **Replacing the lists without a gap** ([`replace_order`]): new entries are written longest
//! prefix first (a key both sets hold is updated in place), then entries no longer wanted are
//! deleted shortest prefix first. For any address, the entry the trie answers with is at each
//! moment its longest old match (with its old flags) or its longest new match (with its new
//! flags), and it changes from the first to the second once: a prefix listed before and after is
//! never seen unlisted, and no address ever gets flags that neither configuration gives it.

use crate::pod::{bytes_of, from_bytes};
use crate::services::{key_addr, trie_prefixlen};
use crate::{bpf, types, Result};
use libbpf_rs::{MapCore, MapFlags};
use std::collections::BTreeMap;
use synwall_engine::abuse::{BucketKey, BucketState, Buckets, ClientLists};
use synwall_engine::services::Prefix;

// LIST_DENY, LIST_ALLOW, the bits of `sw_config.lists`, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_abuse.rs"));

/// One trie entry: (prefix length counting the family byte, family, 16-byte address) -> flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientEntry {
    /// The trie prefix length (IPv4 `a.b.c.d/L` is 8 + 96 + L, IPv6 `P/L` is 8 + L).
    pub prefixlen: u32,
    /// `SW_FAMILY_V4` or `SW_FAMILY_V6`.
    pub family: u8,
    /// The address, IPv4 as `::ffff:a.b.c.d`, host bits zero.
    pub addr: [u8; 16],
}

/// What an entry says (`struct sw_client_value`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFlags {
    /// In a deny prefix.
    pub deny: bool,
    /// In an allow prefix.
    pub allow: bool,
}

/// The `sw_config.lists` flags of a pair of lists.
pub fn list_flags(lists: &ClientLists) -> u8 {
    (if lists.deny.is_empty() { 0 } else { LIST_DENY })
        | (if lists.allow.is_empty() {
            0
        } else {
            LIST_ALLOW
        })
}

fn entry_of(p: &Prefix) -> ClientEntry {
    let (family, addr) = key_addr(&p.addr);
    ClientEntry {
        prefixlen: trie_prefixlen(p),
        family,
        addr,
    }
}

/// The trie's entries for `lists`: one per distinct listed prefix, with the merged flags.
pub fn client_entries(lists: &ClientLists) -> BTreeMap<ClientEntry, ClientFlags> {
    let mut out = BTreeMap::new();
    for p in lists.deny.iter().chain(&lists.allow) {
        let inside = |l: &[Prefix]| l.iter().any(|q| q.len <= p.len && q.contains(&p.addr));
        out.insert(
            entry_of(p),
            ClientFlags {
                deny: inside(&lists.deny),
                allow: inside(&lists.allow),
            },
        );
    }
    out
}

/// One step of a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write (add or update) an entry.
    Write(ClientEntry, ClientFlags),
    /// Delete an entry no longer wanted.
    Delete(ClientEntry),
}

/// The steps that turn the live trie `old` into `new` without a gap (see the module doc): every
/// entry of `new` whose value differs, longest prefix first, then every entry only `old` has,
/// shortest prefix first.
pub fn replace_order(
    old: &BTreeMap<ClientEntry, ClientFlags>,
    new: &BTreeMap<ClientEntry, ClientFlags>,
) -> Vec<Step> {
    let mut writes: Vec<(&ClientEntry, &ClientFlags)> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .collect();
    writes.sort_by_key(|(k, _)| std::cmp::Reverse(k.prefixlen));
    let mut deletes: Vec<&ClientEntry> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    deletes.sort_by_key(|k| k.prefixlen);
    writes
        .into_iter()
        .map(|(k, v)| Step::Write(*k, *v))
        .chain(deletes.into_iter().map(|k| Step::Delete(*k)))
        .collect()
}

/// What the trie answers for `addr` (its longest match), as the program's lookup does.
pub fn longest_match(
    entries: &BTreeMap<ClientEntry, ClientFlags>,
    addr: &std::net::IpAddr,
) -> Option<ClientFlags> {
    let (family, a) = key_addr(addr);
    entries
        .iter()
        .filter(|(e, _)| e.family == family && bits_match(&e.addr, &a, e.prefixlen - 8))
        .max_by_key(|(e, _)| e.prefixlen)
        .map(|(_, v)| *v)
}

fn bits_match(p: &[u8; 16], a: &[u8; 16], len: u32) -> bool {
    let full = (len / 8) as usize;
    if p[..full] != a[..full] {
        return false;
    }
    let rem = len % 8;
    rem == 0 || (p[full] ^ a[full]) & (0xffu8 << (8 - rem)) == 0
}

fn key_bytes(e: &ClientEntry) -> types::sw_client_key {
    types::sw_client_key {
        prefixlen: e.prefixlen,
        family: e.family,
        addr: e.addr,
        pad: [0; 3],
    }
}

/// Every entry of a `sw_clients` map.
pub fn read_clients(map: &dyn MapCore) -> Result<BTreeMap<ClientEntry, ClientFlags>> {
    let mut out = BTreeMap::new();
    for k in map.keys() {
        let Some(v) = map
            .lookup(&k, MapFlags::ANY)
            .map_err(bpf("read sw_clients"))?
        else {
            continue;
        };
        let key: types::sw_client_key = from_bytes(&k);
        let val: types::sw_client_value = from_bytes(&v);
        out.insert(
            ClientEntry {
                prefixlen: key.prefixlen,
                family: key.family,
                addr: key.addr,
            },
            ClientFlags {
                deny: val.deny != 0,
                allow: val.allow != 0,
            },
        );
    }
    Ok(out)
}

/// Apply [`replace_order`]'s steps to a `sw_clients` map.
pub(crate) fn apply(map: &dyn MapCore, steps: &[Step]) -> Result<()> {
    for s in steps {
        match s {
            Step::Write(k, v) => {
                let val = types::sw_client_value {
                    deny: v.deny as u8,
                    allow: v.allow as u8,
                    pad: [0; 2],
                };
                map.update(bytes_of(&key_bytes(k)), bytes_of(&val), MapFlags::ANY)
                    .map_err(bpf("write sw_clients"))?;
            }
            Step::Delete(k) => map
                .delete(bytes_of(&key_bytes(k)))
                .map_err(bpf("delete from sw_clients"))?,
        }
    }
    Ok(())
}

/// A bucket key as the map holds it.
pub fn bucket_key_bytes(k: &BucketKey) -> types::sw_budget_key {
    let mut addr = [0u32; 2];
    for (i, w) in addr.iter_mut().enumerate() {
        *w = u32::from_ne_bytes(k.addr[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    }
    types::sw_budget_key {
        family: k.family,
        addr,
    }
}

fn decode_bucket(k: &[u8], v: &[u8]) -> (BucketKey, BucketState) {
    let key: types::sw_budget_key = from_bytes(k);
    let val: types::sw_budget_state = from_bytes(v);
    let mut addr = [0u8; 8];
    addr[..4].copy_from_slice(&key.addr[0].to_ne_bytes());
    addr[4..].copy_from_slice(&key.addr[1].to_ne_bytes());
    (
        BucketKey {
            family: key.family,
            addr,
        },
        BucketState {
            tat: val.tat,
            drops: val.drops,
            last_drop_ns: val.last_drop_ns,
        },
    )
}

/// Every bucket of a budget map (`sw_budget`, `sw_flow_budget`), read in batches.
pub fn read_buckets(map: &dyn MapCore) -> Result<Buckets> {
    let mut out = Vec::new();
    if map.map_type().is_percpu() {
        // The per-CPU alternative (measurements only): each CPU's bucket; drops summed, the
        // latest drop and tat kept.
        for k in map.keys() {
            let Some(vs) = map
                .lookup_percpu(&k, MapFlags::ANY)
                .map_err(bpf("read a budget map"))?
            else {
                continue;
            };
            let mut sum = BucketState::default();
            let mut key = None;
            for v in vs {
                let (bk, st) = decode_bucket(&k, &v);
                key = Some(bk);
                sum.drops += st.drops;
                sum.tat = sum.tat.max(st.tat);
                sum.last_drop_ns = sum.last_drop_ns.max(st.last_drop_ns);
            }
            out.extend(key.map(|k| (k, sum)));
        }
        return Ok(out);
    }
    let batches = map
        .lookup_batch(1024, MapFlags::ANY, MapFlags::ANY)
        .map_err(bpf("read a budget map"))?;
    for (k, v) in batches {
        out.push(decode_bucket(&k, &v));
    }
    Ok(out)
}

/// Empty a map of buckets or flows (LRU hash maps).
pub(crate) fn clear(map: &dyn MapCore) {
    let keys: Vec<Vec<u8>> = map.keys().collect();
    for k in keys {
        // An entry evicted meanwhile is fine.
        let _ = map.delete(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::net::IpAddr;

    fn lists(deny: &[&str], allow: &[&str]) -> ClientLists {
        ClientLists {
            deny: deny.iter().map(|p| p.parse().unwrap()).collect(),
            allow: allow.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    const POOL: [&str; 10] = [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.1.2.128/25",
        "10.1.2.200/32",
        "192.168.0.0/16",
        "2001:db8::/32",
        "2001:db8:1::/48",
        "2001:db8:1:2::/64",
        "::ffff:10.0.0.0/104",
    ];
    const PROBES: [&str; 9] = [
        "10.1.2.200",
        "10.1.2.130",
        "10.1.2.3",
        "10.1.5.5",
        "10.9.9.9",
        "192.168.3.3",
        "2001:db8:1:2::9",
        "2001:db8:5::1",
        "::ffff:10.1.2.3",
    ];

    fn random_lists(rng: &mut rand::rngs::SmallRng) -> ClientLists {
        let mut pick =
            || -> Vec<&str> { POOL.iter().filter(|_| rng.gen_bool(0.3)).copied().collect() };
        let (d, a) = (pick(), pick());
        lists(&d, &a)
    }

    /// The trie's longest match answers what the lists say, for any lists.
    #[test]
    fn one_lookup_answers_both_lists() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for _ in 0..500 {
            let l = random_lists(&mut rng);
            let t = client_entries(&l);
            for p in PROBES {
                let a: IpAddr = p.parse().unwrap();
                let c = l.classify(&a);
                let m = longest_match(&t, &a).unwrap_or_default();
                assert_eq!((m.deny, m.allow), (c.denied, c.allowed), "{p} in {l:?}");
            }
        }
        assert_eq!(list_flags(&lists(&[], &[])), 0);
        assert_eq!(list_flags(&lists(&["10.0.0.0/8"], &[])), LIST_DENY);
        assert_eq!(
            list_flags(&lists(&["10.0.0.0/8"], &["10.0.0.0/8"])),
            LIST_DENY | LIST_ALLOW
        );
    }

    /// Replaying a replacement step by step: after every step each probe address reads its old
    /// or its new answer, and once it has read the new one it never reads the old one again.
    #[test]
    fn every_step_of_a_replacement_answers_old_or_new() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let mut checked = 0;
        for _ in 0..2000 {
            let (a, b) = (random_lists(&mut rng), random_lists(&mut rng));
            let (old, new) = (client_entries(&a), client_entries(&b));
            let mut live = old.clone();
            let mut switched = [false; PROBES.len()];
            for step in replace_order(&old, &new) {
                match step {
                    Step::Write(k, v) => {
                        live.insert(k, v);
                    }
                    Step::Delete(k) => {
                        live.remove(&k);
                    }
                }
                for (i, p) in PROBES.iter().enumerate() {
                    let addr: IpAddr = p.parse().unwrap();
                    let (was, will) = (a.classify(&addr), b.classify(&addr));
                    let m = longest_match(&live, &addr).unwrap_or_default();
                    let now = (m.deny, m.allow);
                    let (o, n) = ((was.denied, was.allowed), (will.denied, will.allowed));
                    assert!(
                        now == o || now == n,
                        "{p}: {now:?} is neither {o:?} nor {n:?}"
                    );
                    if switched[i] {
                        assert_eq!(now, n, "{p} went back");
                    }
                    switched[i] |= now == n && n != o;
                    checked += 1;
                }
            }
            assert_eq!(live, new);
        }
        assert!(checked > 10_000);
    }

    /// The order matters: writing shorter prefixes first (or deleting longer ones first) does
    /// show a wrong answer for some replacement.
    #[test]
    fn the_wrong_order_shows_a_gap() {
        // Old: allow 10.0.0.0/8 and deny 10.1.0.0/16; new: no lists. Deleting the /16 first
        // leaves 10.1.x allowed: neither old (denied) nor new (nothing).
        let old = client_entries(&lists(&["10.1.0.0/16"], &["10.0.0.0/8"]));
        let mut live = old.clone();
        let longest_first = |m: &BTreeMap<ClientEntry, ClientFlags>| {
            let mut k: Vec<ClientEntry> = m.keys().copied().collect();
            k.sort_by_key(|e| std::cmp::Reverse(e.prefixlen));
            k
        };
        live.remove(&longest_first(&old)[0]);
        let m = longest_match(&live, &"10.1.0.1".parse().unwrap()).unwrap();
        assert_eq!((m.deny, m.allow), (false, true));
        // The order used deletes the /8 first.
        let steps = replace_order(&old, &BTreeMap::new());
        assert_eq!(steps[0], Step::Delete(longest_first(&old)[1]));
    }
}
