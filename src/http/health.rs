//! Liveness and readiness probes.
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, payload::Json};

use crate::{domain::health::Status, state::AppState};

#[derive(Tags)]
enum Tag {
    /// Probes for orchestrators
    Health,
}

/// A probe's answer: overall status and each dependency's.
#[derive(Object)]
#[oai(rename = "Health", skip_serializing_if_is_none)]
pub struct HealthBody {
    /// "ok", "degraded" (serving without Redis) or "unavailable".
    pub status: String,
    /// "ok" or "unavailable" (absent for liveness).
    pub database: Option<String>,
    /// "ok" or "unavailable" (absent without Redis, and for liveness).
    pub redis: Option<String>,
}

#[derive(ApiResponse)]
pub enum Probe {
    /// Serving (`"degraded"` while a Redis that is not required is unreachable).
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// A dependency is down; the body says which.
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(ApiResponse)]
pub enum Live {
    /// Serving.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
}

pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// The process runs and answers; nothing else is checked.
    #[oai(
        path = "/health/live",
        method = "get",
        operation_id = "health_live_retrieve"
    )]
    async fn live(&self) -> Live {
        Live::Ok(Json(HealthBody {
            status: "ok".into(),
            database: None,
            redis: None,
        }))
    }

    /// Readiness
    ///
    /// The database (and Redis, when configured) answer within 1 s; the result is cached for
    /// 1 s. An unreachable Redis answers 200 with `"status": "degraded"` (Tessera serves from
    /// SQL), or 503 with `health.redis_required`; an unreachable database always answers 503,
    /// naming the dependency that failed.
    #[oai(
        path = "/health/ready",
        method = "get",
        operation_id = "health_ready_retrieve"
    )]
    async fn ready(&self, state: Data<&AppState>) -> Probe {
        let report = state.readiness.check().await;
        let word = |up: bool| {
            if up {
                "ok".to_owned()
            } else {
                "unavailable".to_owned()
            }
        };
        let status = report.status();
        let body = HealthBody {
            status: match status {
                Status::Ok => "ok",
                Status::Degraded => "degraded",
                Status::Unavailable => "unavailable",
            }
            .to_owned(),
            database: Some(word(report.database)),
            redis: report.redis.map(word),
        };
        match status {
            Status::Ok => Probe::Ok(Json(body)),
            Status::Degraded => {
                tracing::warn!("degraded: Redis unreachable, serving from SQL");
                Probe::Ok(Json(body))
            }
            Status::Unavailable => {
                tracing::warn!(database = report.database, redis = ?report.redis, "not ready");
                Probe::Unavailable(Json(body), 1)
            }
        }
    }
}
