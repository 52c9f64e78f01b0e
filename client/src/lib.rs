//! tq's Rust client library.
//!
//! - [`client`]: a typed wrapper over the module's `TQ.*` commands;
//! - [`job`]: a job as handlers see it, and how they report on it;
//! - [`worker`]: the processor loop (slots, heartbeats, retries, graceful
//!   stop, reconnection), with in-process handlers and an event hook;
//! - [`enqueue`]: enqueueing now, at a time or after a delay, or unique;
//! - [`config`]: retry policies and per-class/per-queue settings (JSON file);
//! - [`duration`]: `30s`-style durations and the one time syntax;
//! - [`host`]: the host name worker names start with;
//! - [`metrics`]: reading the job metrics the module keeps (bounded reads).
//!
//! This crate never links the module (`tq-module`): the module installs
//! Redis's allocator, which aborts outside a server. It writes nothing to the
//! terminal; the `tq` command (`tq-cli`) is built on it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod client;
pub mod config;
pub mod duration;
pub mod enqueue;
pub mod host;
pub mod job;
pub mod metrics;
pub mod worker;

pub use client::Client;
pub use job::{Job, JobError};
pub use worker::{StopHandle, Worker, WorkerOptions};
