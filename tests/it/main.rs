//! The one integration-test binary (one link step instead of one per file).
//! Each module is named for the behaviour it proves.

// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod pg;
mod support;

mod agent_lines;
mod api_refusals;
mod calling_engine;
mod calling_limits;
mod calling_windows;
mod campaign_controls;
mod cdr_push;
mod client_errors;
mod commands;
mod config_errors;
mod connections;
mod console_ui;
mod contacts_pages;
mod container;
mod cross_site;
mod drains;
mod dry_run;
mod engine_stops;
mod inbox_safety;
mod live_counts;
mod metrics_scrapes;
mod mock_cdr;
mod mock_push;
mod mock_stand_in;
mod notify;
mod one_process;
mod openapi;
mod outage;
mod outcome_history;
mod outcomes;
mod outcomes_store;
mod oversized;
mod postgres_commands;
mod purge;
mod redial_stops;
mod redials;
mod redials_store;
mod replicas;
mod report;
mod requeue;
mod results_cells;
mod results_target;
mod run_campaign;
mod same_person;
mod serve;
mod serve_auth;
mod served;
mod signing_vectors;
mod slow_clients;
mod store_contract;
mod store_queue;
mod systematic;
mod tags;
mod takeover;
