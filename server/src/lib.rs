//! ringlog-server: the broker.
//!
//! Not built yet: the shards, the native protocol and the broker binary arrive
//! with the broker issue. This crate exists so the workspace has its final
//! shape and the layering (server -> engine) is enforced from the start.
