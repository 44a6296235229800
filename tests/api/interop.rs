//! The real Python stack (PyJWT, DRF + SimpleJWT) accepts Tessera's tokens. Runs when
//! `TESSERA_INTEROP_PYTHON` names a Python with those packages (`.ci/run` makes one); required
//! under `CI=true`.
use std::process::Command;

use crate::helpers::{Backend, SIGNING_KEY, TestApp};

#[tokio::test]
async fn simplejwt_and_pyjwt_accept_tessera_access_tokens_and_refuse_refresh_tokens() {
    let Ok(python) = std::env::var("TESSERA_INTEROP_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs TESSERA_INTEROP_PYTHON"
        );
        eprintln!("TESSERA_INTEROP_PYTHON unset: skipping the Python interop test");
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.register("py").await;
    let (access, refresh) = app.login(&user).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/simplejwt_accepts_tessera_tokens.py"
    );
    let out = Command::new(python)
        .args([script, SIGNING_KEY, &access, &refresh])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interop ok"));
}
