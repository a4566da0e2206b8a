//! The named scenarios of issue 13, each a scripted run of the simulator
//! (every invariant is still checked after every step) with assertions of
//! its own about what must and must not happen.

use ringlog_cluster::{BrokerId, TopicPartition};

use crate::world::{Config, World, CONTROLLER, PRODUCERS};
use crate::{print_trace, settle};

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Runs `script` on a fresh world and settles it; prints the trace if
/// anything fails.
fn scenario(seed: u64, cfg: Config, script: impl FnOnce(&mut World)) -> World {
    let mut slot = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let w = slot.insert(World::new(seed, cfg));
        w.run_for(3_000);
        script(w);
        settle(w);
    }));
    if let Err(e) = result {
        if let Some(w) = &slot {
            print_trace(w);
        }
        std::panic::resume_unwind(e);
    }
    slot.unwrap()
}

/// Steps until `done` holds, for at most `ms`; whether it did.
fn wait_until(w: &mut World, ms: u64, mut done: impl FnMut(&World) -> bool) -> bool {
    let until = w.now + ms;
    while w.now < until {
        if done(w) {
            return true;
        }
        w.run_for(10);
    }
    done(w)
}

/// Like [`wait_until`], checking after every single event.
fn step_until(w: &mut World, ms: u64, mut done: impl FnMut(&World) -> bool) -> bool {
    let until = w.now + ms;
    while w.now < until && !done(w) {
        if !w.step() {
            break;
        }
    }
    done(w)
}

fn leader(w: &World) -> BrokerId {
    w.leader_of(&tp()).expect("t-0 has a leader")
}

fn others(w: &World, b: BrokerId) -> Vec<BrokerId> {
    w.brokers.keys().copied().filter(|x| *x != b).collect()
}

fn in_isr(w: &World, b: BrokerId) -> bool {
    w.controller_state().partitions[&tp()].isr.contains(&b)
}

#[test]
fn leader_killed_during_acks_all_produce() {
    let w = scenario(1, Config::default(), |w| {
        let mut leaders = Vec::new();
        for _ in 0..6 {
            let l = leader(w);
            let before = w.history.acks_of(&tp());
            w.crash(l);
            assert!(
                wait_until(w, 5_000, |w| w.leader_of(&tp()).is_some_and(|n| n != l)),
                "no new leader after broker {l} died"
            );
            assert!(
                wait_until(w, 5_000, |w| w.history.acks_of(&tp()) > before + 5),
                "producing did not resume after broker {l} died"
            );
            w.start(l);
            w.run_for(3_000);
            leaders.push(l);
        }
        leaders.dedup();
        assert!(
            leaders.len() >= 3,
            "the kills hit too few leaders: {leaders:?}"
        );
    });
    assert!(w.history.acks_of(&tp()) > 100);
}

#[test]
fn leader_cut_off_from_followers_but_not_clients_fails_acks_all() {
    let w = scenario(2, Config::default(), |w| {
        let l = leader(w);
        for f in others(w, l) {
            w.cut(l, f);
        }
        // Its followers leave the ISR once lag_max passes; until then
        // acknowledgements stall, after it they fail.
        assert!(
            wait_until(w, 5_000, |w| w.controller_state().partitions[&tp()].isr
                == vec![l]),
            "the cut-off followers never left the ISR"
        );
        let acks = w.history.acks_of(&tp());
        let errors = w
            .history
            .client_errors
            .get("not_enough_replicas")
            .copied()
            .unwrap_or(0);
        w.run_for(3_000);
        assert_eq!(
            w.leader_of(&tp()),
            Some(l),
            "the leader still reaches the controller"
        );
        assert_eq!(
            w.history.acks_of(&tp()),
            acks,
            "acks=all succeeded with only the leader in sync"
        );
        let now_errors = w
            .history
            .client_errors
            .get("not_enough_replicas")
            .copied()
            .unwrap_or(0);
        assert!(
            now_errors > errors,
            "producers were not told not_enough_replicas"
        );
        w.heal();
        assert!(
            wait_until(w, 5_000, |w| w.history.acks_of(&tp()) > acks),
            "acks=all did not recover once the followers were back"
        );
    });
    assert!(w.history.client_errors["not_enough_replicas"] > 0);
}

#[test]
fn zombie_leader_cut_off_from_the_controller_after_a_new_leader_is_elected() {
    scenario(3, Config::default(), |w| {
        let zombie = leader(w);
        w.cut(zombie, CONTROLLER);
        assert!(
            wait_until(w, 6_000, |w| w
                .leader_of(&tp())
                .is_some_and(|n| n != zombie)),
            "no new leader while broker {zombie} was cut off from the controller"
        );
        // The zombie still reaches its followers and the producers, and
        // still believes it leads; it must acknowledge nothing from here on.
        assert!(w.replica(zombie, &tp()).is_some_and(|r| r.is_leader()));
        let zombie_acks = w.history.acks_by.get(&zombie).copied().unwrap_or(0);
        let acks = w.history.acks_of(&tp());
        w.run_for(4_000);
        assert_eq!(
            w.history.acks_by.get(&zombie).copied().unwrap_or(0),
            zombie_acks,
            "the fenced leader acknowledged writes"
        );
        assert!(
            w.history.acks_of(&tp()) > acks,
            "the new leader acknowledged nothing"
        );
    });
}

#[test]
fn a_follower_restarts_and_becomes_leader_just_after_the_old_leader_crashed() {
    // KIP-101 case 1: a follower that truncated to its high watermark on
    // restart and then led would lose acknowledged records.
    scenario(4, Config::default(), |w| {
        let a = leader(w);
        let b = others(w, a)[0];
        let c = others(w, a)[1];
        w.crash(c);
        w.crash(b);
        w.start(b);
        // It registers once its old session has run out.
        assert!(wait_until(w, 4_000, |w| w.replica(b, &tp()).is_some()));
        assert!(
            wait_until(w, 8_000, |w| in_isr(w, b)),
            "the restarted follower never rejoined the ISR"
        );
        let acked = w.history.acks_of(&tp());
        w.crash(a);
        assert!(
            wait_until(w, 5_000, |w| w.leader_of(&tp()) == Some(b)),
            "the restarted follower did not take over"
        );
        // Every acknowledged batch is on the new leader (the per-step checks
        // compare it batch by batch); alone in the ISR it refuses acks=all
        // until another replica is back.
        let _ = acked;
        let acked_end = w.history.acks[&tp()].iter().map(|b| b.end()).max().unwrap();
        assert!(w.brokers[&b].disks[&tp()].end() >= acked_end);
    });
}

#[test]
fn all_replicas_hard_crash_and_restart_in_another_order_with_different_tails() {
    scenario(5, Config::default(), |w| {
        let brokers: Vec<BrokerId> = w.brokers.keys().copied().collect();
        for round in 0..4u64 {
            // Two replicas stop syncing, at different moments: their
            // unsynced tails differ when everything dies.
            let quiet = [
                brokers[round as usize % 3],
                brokers[(round as usize + 1) % 3],
            ];
            w.brokers.get_mut(&quiet[0]).unwrap().sync = false;
            w.run_for(150);
            w.brokers.get_mut(&quiet[1]).unwrap().sync = false;
            w.run_for(150);
            for b in &brokers {
                w.crash(*b);
            }
            for b in &brokers {
                w.brokers.get_mut(b).unwrap().sync = true;
            }
            let mut order = brokers.clone();
            order.rotate_left(round as usize % 3);
            order.reverse();
            for b in order {
                w.run_for(400 + 300 * round);
                w.start(b);
            }
            let acks = w.history.acks_of(&tp());
            assert!(
                wait_until(w, 10_000, |w| w.history.acks_of(&tp()) > acks),
                "nothing acknowledged after restart round {round}"
            );
        }
    });
}

#[test]
fn back_to_back_elections_where_a_follower_misses_an_epoch() {
    // KAFKA-7164's shape: leaders change faster than a follower follows.
    // G holds an epoch-e record that F never fetched; F leads epoch L and
    // syncs records G never sees (the producers' retries of what G holds);
    // F dies and G leads epoch M, which F misses. F comes back with epoch
    // L, which G never had; G's answer names e and where e ends in G's log,
    // past where it ends in F's: F must cut at its own end of e.
    let mut cfg = Config::default();
    // Long enough that G stays in the ISR while F leads.
    cfg.replica.lag_max = 5_000;
    scenario(6, cfg, |w| {
        let x = leader(w);
        let isr = w.controller_state().partitions[&tp()].isr.clone();
        let rest: Vec<BrokerId> = isr.iter().copied().filter(|b| *b != x).collect();
        assert_eq!(rest.len(), 2, "all three replicas in sync: {isr:?}");
        // The controller elects the first live ISR member in replica order.
        let (f, g) = (rest[0], rest[1]);
        let end = |w: &World, b: BrokerId| w.brokers[&b].disks[&tp()].end();
        assert!(
            step_until(w, 2_000, |w| end(w, x) > end(w, f)),
            "the leader never got ahead of F"
        );
        w.cut(f, x);
        w.cut(f, g);
        w.run_for(300);
        assert!(end(w, g) > end(w, f), "G did not fetch what F lacks");
        w.crash(x);
        assert!(
            wait_until(w, 5_000, |w| w
                .replica(f, &tp())
                .is_some_and(|r| r.is_leader())),
            "F did not take over"
        );
        let epoch_l = w.controller_state().partitions[&tp()].leader_epoch;
        let has_l = move |w: &World| {
            w.brokers[&f].disks[&tp()]
                .batches
                .iter()
                .any(|b| b.epoch == epoch_l)
        };
        assert!(
            wait_until(w, 3_000, has_l),
            "F wrote nothing under its epoch"
        );
        w.producing = false;
        assert!(wait_until(w, 1_000, |w| {
            let disk = &w.brokers[&f].disks[&tp()];
            disk.durable == disk.end()
        }));
        w.crash(f);
        w.producing = true;
        assert!(
            wait_until(w, 5_000, |w| w.leader_of(&tp()) == Some(g)),
            "G did not take over"
        );
        w.heal();
        w.start(f);
        w.start(x);
        assert!(
            wait_until(w, 5_000, |w| w.replica(f, &tp()).is_some() && !has_l(w)),
            "F kept records of the epoch it led"
        );
    });
}

#[test]
fn the_last_in_sync_replica_loses_its_unsynced_tail() {
    let cfg = Config {
        min_insync: 1,
        ..Config::default()
    };
    scenario(7, cfg, |w| {
        let l = leader(w);
        for f in others(w, l) {
            w.isolate(f);
        }
        assert!(
            wait_until(w, 6_000, |w| w.controller_state().partitions[&tp()].isr
                == vec![l]),
            "the isolated followers never left the ISR"
        );
        w.brokers.get_mut(&l).unwrap().sync = false;
        w.run_for(500);
        let written = w.brokers[&l].disks[&tp()].end();
        let synced = w.brokers[&l].disks[&tp()].durable;
        assert!(written > synced, "no unsynced tail to lose");
        let epoch = w.controller_state().partitions[&tp()].leader_epoch;
        w.crash(l);
        w.brokers.get_mut(&l).unwrap().sync = true;
        assert_eq!(w.brokers[&l].disks[&tp()].end(), synced);
        w.start(l);
        assert!(
            wait_until(w, 3_000, |w| w
                .replica(l, &tp())
                .is_some_and(|r| r.is_leader())),
            "the last ISR member did not lead again"
        );
        assert!(w.controller_state().partitions[&tp()].leader_epoch > epoch);
        w.heal();
    });
}

#[test]
fn a_restarted_brokers_pre_crash_fetch_is_refused_by_broker_epoch() {
    scenario(8, Config::default(), |w| {
        // Quiet producers, so a fetch 1.5 s old is still caught up.
        w.producing = false;
        w.run_for(1_000);
        let l = leader(w);
        let f = others(w, l)[0];
        // Fetches from f to the leader now take 4 s to arrive; f crashes
        // with some in flight and comes back (a new incarnation, once its
        // old session ran out) before they land.
        w.slow.insert((f, l), 4_000);
        w.run_for(600);
        w.crash(f);
        let crashed = w.now;
        w.start(f);
        assert!(wait_until(w, 3_500, |w| w.replica(f, &tp()).is_some()));
        assert!(
            !in_isr(w, f),
            "a registration takes the broker out of the ISR"
        );
        assert!(
            w.now < crashed + 4_000,
            "registered after the old fetches landed"
        );
        let before = w.history.ineligible;
        w.run_for(3_000);
        assert!(
            w.history.ineligible > before,
            "the old incarnation's fetches were never proposed and refused"
        );
        w.slow.clear();
        w.producing = true;
        assert!(
            wait_until(w, 5_000, |w| in_isr(w, f)),
            "the new incarnation never rejoined the ISR"
        );
    });
}

#[test]
fn producers_are_nodes_apart_from_brokers() {
    // Guards the numbering the scenarios rely on when they cut links.
    let w = World::new(0, Config::default());
    assert!(w.brokers.keys().all(|b| *b != CONTROLLER && *b < PRODUCERS));
}
