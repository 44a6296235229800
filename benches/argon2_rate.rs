//! The argon2 limit of this machine: argon2id verifications per second with Tessera's default
//! cost (m=19456 KiB, t=2, p=1) on one thread per core, the most any login endpoint can do.
//! `cargo bench --bench argon2_rate` prints one line; `benches/load.sh` compares logins to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier};

fn main() {
    let params = Params::new(19_456, 2, 1, None).expect("argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = argon
        .hash_password(b"correct horse battery")
        .expect("hash")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // ARGON2_SECONDS: how long to hash (5 s); `load.sh` alternates short runs with logins.
    let seconds = std::env::var("ARGON2_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let run_for = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (argon, hash) = (argon.clone(), hash.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < run_for {
                    argon
                        .verify_password(b"correct horse battery", hash.as_str())
                        .expect("verifies");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("argon2id verifications/s on {cores} threads: {rate:.1}");
}
