//! ringlog-client: producer, consumer and admin.
//!
//! Not built yet: it arrives with the client issue. It will encode batches with
//! `ringlog_engine::batch::BatchBuilder`, the one implementation of the format.
