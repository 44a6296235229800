//! Black-box HTTP tests: one test binary (a link per binary is costly here), one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod helpers;
mod accounts;
mod aliases;
mod attacks;
mod browser;
mod cli;
mod cookie;
mod cors;
mod django_hashes;
mod django_import;
mod errors;
mod forge;
mod groups;
mod interop;
mod jwt;
mod jwt_keys;
mod mail_templates;
mod memory_copies;
mod mfa;
mod opaque;
mod openapi;
mod operations;
mod sessions;
mod smtp_sink;
mod throttle;
mod user_ids;
mod users;
mod verify_kit;
