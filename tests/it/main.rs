//! The one integration test binary. Real PostgreSQL (TEST_DATABASE_URL) and
//! Redis (TEST_REDIS_URL); chat platforms and HTTP targets are faked at the wire.

mod approvals;
mod catalog_coverage;
mod catalog_queue;
mod cli;
mod edge;
mod exec;
mod fake_slack;
mod outbox;
mod pipeline;
mod slack;
mod store;
mod support;
