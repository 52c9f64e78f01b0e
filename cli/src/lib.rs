//! The `tq` command, built on the client library (`tq-client`).
//!
//! - [`work`]: `tq work`, the processor loop running one command per job;
//! - [`inspect`]: the operator subcommands (`tq stats`, `tq failed`, `tq
//!   retry`, ...) over the module's inspection commands, with [`table`]
//!   rendering their tables and progress;
//! - [`manage`]: the subcommands that change things one by one (`tq del`,
//!   `tq recur`, `tq promote`, ...);
//! - [`log`]: log lines (text or JSON) of the worker's events, on its event
//!   hook;
//! - [`paired`]: `tq paired`, a command run under an expiring pair lock;
//! - [`cli`]: the command line (clap), dispatched by `main.rs`;
//! - [`web`]: `tq web`, the dashboard and Prometheus endpoint;
//! - [`sys`]: the few libc calls (signals, process groups).
//!
//! This crate never links the module (`tq-module`): the module installs
//! Redis's allocator, which aborts outside a server.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cli;
pub mod inspect;
pub mod log;
pub mod manage;
pub mod paired;
pub mod sys;
pub mod table;
pub mod web;
pub mod work;

// The library's modules under their old paths, so `crate::client::...` reads
// the same in every subcommand.
pub use tq_client::{client, config, duration, enqueue, job, worker};
pub use tq_client::{Client, Job, JobError, StopHandle, Worker, WorkerOptions};
