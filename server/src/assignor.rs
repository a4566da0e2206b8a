//! Partition assignors of consumer groups: pure functions from members,
//! their subscriptions and the topics' partition counts to an assignment.

use std::collections::{BTreeMap, BTreeSet};

/// A topic partition, ordered by topic then index.
pub type Tp = (String, u32);

/// Member id -> the partitions it is given.
pub type Assignment = BTreeMap<String, BTreeSet<Tp>>;

/// The assignors a client may name.
pub const ASSIGNORS: [&str; 3] = ["range", "roundrobin", "sticky"];

/// Assigns with the named assignor (`previous` feeds `sticky`). Every
/// partition of a subscribed topic goes to exactly one member subscribed to
/// it; every member gets an entry, possibly empty.
pub fn assign(
    assignor: &str,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    match assignor {
        "roundrobin" => round_robin(subscriptions, partitions, &mut out),
        "sticky" => sticky(subscriptions, partitions, previous, &mut out),
        _ => range(subscriptions, partitions, &mut out),
    }
    out
}

fn subscribers<'a>(
    subscriptions: &'a BTreeMap<String, BTreeSet<String>>,
    topic: &str,
) -> Vec<&'a String> {
    subscriptions
        .iter()
        .filter(|(_, t)| t.contains(topic))
        .map(|(m, _)| m)
        .collect()
}

/// Kafka's range: per topic, members in id order take contiguous ranges,
/// the first `n % m` one partition more.
fn range(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    for (topic, &count) in partitions {
        let members = subscribers(subscriptions, topic);
        if members.is_empty() {
            continue;
        }
        let (per, extra) = (count / members.len() as u32, count % members.len() as u32);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + u32::from((i as u32) < extra);
            let set = out.entry((*m).clone()).or_default();
            set.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
    }
}

/// Every partition in (topic, index) order dealt to subscribed members in turn.
fn round_robin(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let members: Vec<&String> = subscriptions.keys().collect();
    if members.is_empty() {
        return;
    }
    let mut turn = 0;
    for (topic, &count) in partitions {
        for p in 0..count {
            // The next member in turn that subscribes to the topic.
            for _ in 0..members.len() {
                let m = members[turn % members.len()];
                turn += 1;
                if subscriptions[m].contains(topic) {
                    out.entry(m.clone()).or_default().insert((topic.clone(), p));
                    break;
                }
            }
        }
    }
}

/// Keeps what each member had (if it still subscribes and the partition
/// exists), then moves as few partitions as balance needs: the unassigned
/// and the excess of overloaded members go to the least loaded eligible.
fn sticky(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
    out: &mut Assignment,
) {
    let all: BTreeSet<Tp> = partitions
        .iter()
        .filter(|(t, _)| !subscribers(subscriptions, t).is_empty())
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let eligible = |m: &String, tp: &Tp| subscriptions.get(m).is_some_and(|t| t.contains(&tp.0));
    let mut taken = BTreeSet::new();
    for (m, had) in previous {
        if !subscriptions.contains_key(m) {
            continue;
        }
        for tp in had.iter().filter(|tp| all.contains(*tp) && eligible(m, tp)) {
            if taken.insert(tp.clone()) {
                out.entry(m.clone()).or_default().insert(tp.clone());
            }
        }
    }
    let members = subscriptions.len().max(1);
    let ceiling = all.len().div_ceil(members);
    // Take the excess from members above the ceiling.
    let mut free: Vec<Tp> = all.difference(&taken).cloned().collect();
    for set in out.values_mut() {
        while set.len() > ceiling {
            if let Some(tp) = set.iter().next_back().cloned() {
                set.remove(&tp);
                free.push(tp);
            }
        }
    }
    free.sort();
    for tp in free {
        let least = out
            .iter()
            .filter(|(m, _)| eligible(m, &tp))
            .min_by_key(|(m, set)| (set.len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = least {
            out.entry(m).or_default().insert(tp);
        }
    }
    // Even out: move one at a time from the most to the least loaded
    // member while they differ by more than one (same subscriptions).
    loop {
        let most = out
            .iter()
            .max_by_key(|(m, s)| (s.len(), (*m).clone()))
            .map(|(m, s)| (m.clone(), s.len()));
        let least = out
            .iter()
            .min_by_key(|(m, s)| (s.len(), (*m).clone()))
            .map(|(m, s)| (m.clone(), s.len()));
        let (Some((hi, hn)), Some((lo, ln))) = (most, least) else {
            break;
        };
        if hn <= ln + 1 {
            break;
        }
        let movable = out[&hi].iter().find(|tp| eligible(&lo, tp)).cloned();
        let Some(tp) = movable else { break };
        out.entry(hi).or_default().remove(&tp);
        out.entry(lo).or_default().insert(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[&str], topics: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn check_cover(a: &Assignment, partitions: &BTreeMap<String, u32>) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for tp in set {
                assert!(seen.insert(tp.clone()), "{tp:?} given twice");
            }
        }
        let total: u32 = partitions.values().sum();
        assert_eq!(seen.len() as u32, total);
    }

    #[test]
    fn every_assignor_covers_disjointly_and_balances() {
        let parts: BTreeMap<String, u32> = [("a".to_string(), 6), ("b".to_string(), 5)].into();
        for name in ASSIGNORS {
            for n in 1..8 {
                let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
                let refs: Vec<&str> = members.iter().map(String::as_str).collect();
                let a = assign(name, &subs(&refs, &["a", "b"]), &parts, &Assignment::new());
                check_cover(&a, &parts);
                let sizes: Vec<usize> = a.values().map(BTreeSet::len).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                // Range balances per topic, so it may be off by one per topic.
                let slack = if name == "range" { 2 } else { 1 };
                assert!(hi - lo <= slack, "{name} with {n}: {sizes:?}");
            }
        }
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 7)].into();
        let a = assign(
            "range",
            &subs(&["x", "y", "z"], &["t"]),
            &parts,
            &Assignment::new(),
        );
        let x: Vec<u32> = a["x"].iter().map(|(_, p)| *p).collect();
        assert_eq!(x, vec![0, 1, 2]);
        let z: Vec<u32> = a["z"].iter().map(|(_, p)| *p).collect();
        assert_eq!(z, vec![5, 6]);
    }

    #[test]
    fn sticky_moves_as_little_as_possible() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 6)].into();
        let three = assign(
            "sticky",
            &subs(&["a", "b", "c"], &["t"]),
            &parts,
            &Assignment::new(),
        );
        let four = assign(
            "sticky",
            &subs(&["a", "b", "c", "d"], &["t"]),
            &parts,
            &three,
        );
        check_cover(&four, &parts);
        let kept: usize = ["a", "b", "c"]
            .iter()
            .map(|m| four[*m].intersection(&three[*m]).count())
            .sum();
        // Six partitions over four members (2, 2, 1, 1): one move is enough.
        assert_eq!(kept, 5, "{three:?} -> {four:?}");
        let two = assign("sticky", &subs(&["a", "c"], &["t"]), &parts, &three);
        assert!(three["a"].is_subset(&two["a"]) && three["c"].is_subset(&two["c"]));
        check_cover(&two, &parts);
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let parts: BTreeMap<String, u32> = [("a".to_string(), 4), ("b".to_string(), 4)].into();
        let mut s = subs(&["x"], &["a"]);
        s.extend(subs(&["y"], &["a", "b"]));
        for name in ASSIGNORS {
            let a = assign(name, &s, &parts, &Assignment::new());
            assert!(a["x"].iter().all(|(t, _)| t == "a"), "{name}");
            check_cover(&a, &parts);
        }
    }
}
