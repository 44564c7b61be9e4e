//! The one integration test binary. Real PostgreSQL (TEST_DATABASE_URL) and
//! Redis (TEST_REDIS_URL); chat platforms and HTTP targets are faked at the wire.

// The tests' async blocks hold the whole pipeline's futures: computing their
// layout nests deeper than the default 128 (clippy from a clean target says so).
#![recursion_limit = "256"]

mod alert_incidents;
mod alerts;
mod approvals;
mod boundary;
mod catalog_cap;
mod catalog_chat;
mod catalog_coverage;
mod catalog_hosts;
mod catalog_maintenance;
mod catalog_pdf;
mod catalog_proc;
mod catalog_procpreview;
mod catalog_queue;
mod catalog_schema;
mod catalog_scrape;
mod catalog_secrets;
mod catalog_seq;
mod catalog_summaries;
mod catalog_variants;
mod cli;
mod discord;
mod edge;
mod escalation_policies;
mod exec;
mod fake_discord;
mod fake_slack;
mod guided;
mod incidents;
mod maintenance_window;
mod outbox;
mod pipeline;
mod policies;
mod preview;
mod process_env;
mod remote;
mod scheduled;
mod silences;
mod slack;
mod store;
mod storm;
mod support;
mod wait;
mod writer;
