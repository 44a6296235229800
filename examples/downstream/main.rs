//! A downstream service that trusts Tessera's access tokens without calling Tessera.
//!
//! ```sh
//! TESSERA_JWKS_URL=http://127.0.0.1:8000/.well-known/jwks.json \
//!   cargo run --example downstream          # serves 127.0.0.1:8001 (BIND to change)
//! curl -H "Authorization: Bearer $ACCESS" 127.0.0.1:8001/reports
//! ```
//! `/reports` requires the `manager` group (REQUIRED_GROUP to change); Tessera must put groups
//! into access tokens (`TESSERA__JWT__CLAIMS__GROUPS=true`).
mod service;

use std::sync::Arc;

use poem::{Server, listener::TcpListener};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let verifier = Arc::new(service::verifier_from(var)?);
    let group = var("REQUIRED_GROUP").unwrap_or_else(|| "manager".into());
    let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:8001".into());
    Server::new(TcpListener::bind(bind))
        .run(service::app(verifier, &group))
        .await?;
    Ok(())
}
