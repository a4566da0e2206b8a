//! ringlog-bench: benchmark helpers shared by the criterion benches.
//!
//! The end-to-end load generator (`ringlog-bench produce|consume|e2e`) comes
//! with the benchmark issue; the micro-benchmarks live in `benches/engine.rs`.
