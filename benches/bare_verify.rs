//! The yardstick for `benches/load.sh`: a bare poem endpoint doing what a verify must do at
//! least (JSON parse, HS256 check with jsonwebtoken, one Redis EXISTS), nothing else.
//! Started by the load script (`cargo bench --bench bare_verify`); serves until killed.
use poem::{EndpointExt, Route, handler, http::StatusCode, listener::TcpListener, post, web::Json};
use redis::aio::ConnectionManager;

#[derive(serde::Deserialize)]
struct Body {
    token: String,
}

#[handler]
async fn verify(
    body: Json<Body>,
    redis: poem::web::Data<&ConnectionManager>,
    key: poem::web::Data<&jsonwebtoken::DecodingKey>,
) -> (StatusCode, &'static str) {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let decoded = jsonwebtoken::decode::<serde_json::Value>(&body.token, &key, &validation);
    let Ok(token) = decoded else {
        return (StatusCode::UNAUTHORIZED, "{}");
    };
    let jti = token.claims["jti"].as_str().unwrap_or_default().to_owned();
    let mut conn = redis.clone();
    let revoked: bool = redis::cmd("EXISTS")
        .arg(format!("bare:revoked:{jti}"))
        .query_async(&mut conn)
        .await
        .unwrap_or(true);
    if revoked {
        (StatusCode::BAD_REQUEST, "{}")
    } else {
        (StatusCode::OK, "{}")
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("BARE_BIND").unwrap_or_else(|_| "127.0.0.1:8101".into());
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let client = redis::Client::open(url).map_err(std::io::Error::other)?;
    let redis = ConnectionManager::new(client)
        .await
        .map_err(std::io::Error::other)?;
    let key = jsonwebtoken::DecodingKey::from_secret(
        std::env::var("BARE_KEY").unwrap_or_default().as_bytes(),
    );
    let app = Route::new()
        .at("/verify", post(verify))
        .data(redis)
        .data(key);
    poem::Server::new(TcpListener::bind(bind)).run(app).await
}
