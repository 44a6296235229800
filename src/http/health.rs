//! Liveness and readiness probes.
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, payload::Json};

use crate::state::AppState;

#[derive(Tags)]
enum Tag {
    /// Probes for orchestrators
    Health,
}

/// A probe's answer: overall status and each dependency's.
#[derive(Object)]
#[oai(rename = "Health")]
pub struct HealthBody {
    /// "ok" or "unavailable".
    pub status: String,
    /// "ok" or "unavailable" (absent for liveness).
    pub database: Option<String>,
}

#[derive(ApiResponse)]
pub enum Probe {
    /// Serving.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// A dependency is down; the body says which.
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>, #[oai(header = "Retry-After")] String),
}

pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// The process runs.
    #[oai(path = "/health/live", method = "get")]
    async fn live(&self) -> Probe {
        Probe::Ok(Json(HealthBody {
            status: "ok".into(),
            database: None,
        }))
    }

    /// The database answers.
    #[oai(path = "/health/ready", method = "get")]
    async fn ready(&self, state: Data<&AppState>) -> Probe {
        match state.users.store().ping().await {
            Ok(()) => Probe::Ok(Json(HealthBody {
                status: "ok".into(),
                database: Some("ok".into()),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: database unavailable");
                let body = HealthBody {
                    status: "unavailable".into(),
                    database: Some("unavailable".into()),
                };
                Probe::Unavailable(Json(body), "1".into())
            }
        }
    }
}
