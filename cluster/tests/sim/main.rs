//! The deterministic cluster simulator: the real controller and replica
//! state machines, brokers with in-memory disks that lose unsynced writes on
//! a crash, and a seeded network, all on virtual time in one thread. Every
//! invariant of `docs/replication.md` is checked after every step.
//!
//! `SIM_SEEDS` (how many seeds, default 200), `SIM_SEED` (the first, default
//! 0) and `SIM_STEPS` (steps of faults per seed, default 15,000) choose the
//! runs of `random_seeds`; a failure prints the command that replays it.

mod check;
mod rng;
mod scenarios;
mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};

use world::{Config, World};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// Lets the cluster settle with every fault gone: brokers restarted, the
/// network healed, producers finishing. Then it must have converged.
pub fn settle(w: &mut World) {
    w.cfg.chaos = false;
    w.cfg.drop = 0.0;
    w.cfg.duplicate = 0.0;
    w.cfg.stall = 0.0;
    w.heal();
    let brokers: Vec<u32> = w.brokers.keys().copied().collect();
    for b in brokers {
        w.brokers.get_mut(&b).unwrap().sync = true;
        w.start(b);
    }
    let before = w.history.client_acks;
    w.run_for(10_000);
    assert!(
        w.history.client_acks > before,
        "no producer got an acknowledgement in the 10 s after the faults stopped"
    );
    w.producing = false;
    w.run_for(15_000);
    assert!(
        w.producers_idle(),
        "producers still wait for acknowledgements"
    );
    if let Err(e) = check::converged(w) {
        panic!("not converged after the faults stopped: {e}");
    }
}

fn run_seed(seed: u64, steps: u64, slot: &mut Option<World>) {
    let mut cfg = Config {
        chaos: true,
        drop: 0.02,
        duplicate: 0.02,
        delay: (1, 40),
        stall: 0.005,
        ..Config::default()
    };
    let mut shape = rng::Rng::new(seed.wrapping_mul(31));
    cfg.min_insync = if shape.chance(0.25) { 1 } else { 2 };
    cfg.partitions = shape.range(1, 4) as u32;
    let w = slot.insert(World::new(seed, cfg));
    while w.steps < steps && w.step() {}
    settle(w);
}

/// Prints the end of a failed run's trace.
pub fn print_trace(w: &World) {
    let trace = w.trace();
    eprintln!("the last {} events of the run:", trace.len().min(80));
    for line in &trace[trace.len().saturating_sub(80)..] {
        eprintln!("  {line}");
    }
}

#[test]
fn random_seeds() {
    let first = env_u64("SIM_SEED", 0);
    let seeds = env_u64("SIM_SEEDS", 200);
    let steps = env_u64("SIM_STEPS", 15_000);
    let mut acks = 0;
    for seed in first..first + seeds {
        let mut slot = None;
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, steps, &mut slot))) {
            Ok(()) => acks += slot.map_or(0, |w| w.history.client_acks),
            Err(e) => {
                if let Some(w) = &slot {
                    print_trace(w);
                }
                eprintln!(
                    "seed {seed} failed; replay it with\n  SIM_SEED={seed} SIM_SEEDS=1 SIM_STEPS={steps} \
                     cargo test -p ringlog-cluster --test sim random_seeds -- --nocapture"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!(
        "{seeds} seeds from {first}, {steps} fault steps each: {acks} acknowledged batches checked"
    );
    assert!(
        acks as u64 > seeds,
        "the runs acknowledged almost nothing: the checks saw no traffic"
    );
}
