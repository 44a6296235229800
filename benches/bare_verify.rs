//! The yardstick for `benches/load.sh`: a bare poem endpoint doing what a verify must do at
//! least (parse the same JSON body, check the same HS256 token with jsonwebtoken) and nothing
//! else. Started by the load script (`cargo bench --bench bare_verify`); serves until killed.
use poem::{EndpointExt, Route, handler, http::StatusCode, listener::TcpListener, post, web::Json};

#[derive(serde::Deserialize)]
struct Body {
    token: String,
}

#[handler]
async fn verify(
    body: Json<Body>,
    key: poem::web::Data<&jsonwebtoken::DecodingKey>,
) -> (StatusCode, &'static str) {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    match jsonwebtoken::decode::<serde_json::Value>(&body.token, &key, &validation) {
        Ok(_) => (StatusCode::OK, "{}"),
        Err(_) => (StatusCode::UNAUTHORIZED, "{}"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("BARE_BIND").unwrap_or_else(|_| "127.0.0.1:8101".into());
    let key = jsonwebtoken::DecodingKey::from_secret(
        std::env::var("BARE_KEY").unwrap_or_default().as_bytes(),
    );
    let app = Route::new().at("/verify", post(verify)).data(key);
    poem::Server::new(TcpListener::bind(bind)).run(app).await
}
