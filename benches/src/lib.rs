//! ringlog-bench: the end-to-end load generator (`ringlog-bench
//! produce|consume|e2e`, built on `ringlog-client`) and the helpers of the
//! criterion micro-benchmarks in `benches/engine.rs`.

pub mod message;
pub mod plot;
pub mod run;
pub mod stats;
