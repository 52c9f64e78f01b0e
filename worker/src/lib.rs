//! tq's client side: the `tq` command and the library behind it.
//!
//! - [`client`]: a typed wrapper over the module's `TQ.*` commands;
//! - [`job`]: a job as handlers see it, and how they report on it;
//! - [`worker`]: the processor loop (slots, heartbeats, retries, graceful
//!   stop, reconnection), with in-process handlers;
//! - [`work`]: `tq work`, the processor loop running one command per job;
//! - [`enqueue`]: `tq enqueue`;
//! - [`inspect`]: the operator subcommands (`tq stats`, `tq failed`, `tq
//!   retry`, ...) over the module's inspection commands, with [`table`]
//!   rendering their tables and progress;
//! - [`config`]: retry policies and per-class/per-queue settings (JSON file);
//! - [`log`]: log lines (text or JSON) of the worker's events;
//! - [`paired`]: `tq paired`, a command run under an expiring pair lock;
//! - [`duration`]: `30s`-style durations;
//! - [`cli`]: the command line (clap), dispatched by `main.rs`;
//! - [`web`]: `tq web`, the dashboard and Prometheus endpoint;
//! - [`sys`]: the few libc calls (signals, process groups, host name).
//!
//! This crate never links the module (`tq-module`): the module installs
//! Redis's allocator, which aborts outside a server.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cli;
pub mod client;
pub mod config;
pub mod duration;
pub mod enqueue;
pub mod inspect;
pub mod job;
pub mod log;
pub mod manage;
pub mod paired;
pub mod sys;
pub mod table;
pub mod web;
pub mod work;
pub mod worker;

pub use client::Client;
pub use job::{Job, JobError};
pub use worker::{StopHandle, Worker, WorkerOptions};
