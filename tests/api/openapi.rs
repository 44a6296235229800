//! The OpenAPI document: committed as generated, and saying what the code answers.
use std::collections::HashSet;

use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&tessera::http::openapi_json()).unwrap()
}

/// (path, method, operation) for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), op.clone()));
        }
    }
    all
}

/// Public operations that check a credential or a token of their body and answer 401 for it
/// (SimpleJWT's views); every other 401 belongs to an operation that authenticates its caller.
const PUBLIC_401: [&str; 9] = [
    "token_create",
    "auth_jwt_create_create",
    // A right password of a user with TOTP: 401 mfa_required.
    "auth_token_login_create",
    "api_token_auth_create",
    "token_refresh_create",
    "auth_jwt_refresh_create",
    "token_verify_create",
    "auth_jwt_verify_create",
    "token_blacklist_create",
];

/// Operations that touch no store and no hashing, so cannot answer 503 (the readiness probe
/// answers its own 503).
const NO_STORE: [&str; 2] = ["well_known_jwks_json_retrieve", "health_live_retrieve"];

#[test]
fn committed_openapi_json_matches_the_code() {
    let generated = tessera::http::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

/// drf-spectacular's rule: the path without a leading `/api/` and without its parameters,
/// words joined by `_`, then the action: `list` (a GET answering a collection), `retrieve`,
/// `create`, `update`, `partial_update`, `destroy` (`destroy_all` for a DELETE on a collection
/// whose items have their own DELETE).
fn expected_operation_id(path: &str, method: &str, op: &Value, paths: &Value) -> String {
    let words: Vec<String> = path
        .trim_start_matches("/api/")
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(|s| s.replace(['-', '.'], "_"))
        .collect();
    let ok = &op["responses"]["200"]["content"]["application/json; charset=utf-8"]["schema"];
    let collection = ok["type"] == "array" || ok.get("oneOf").is_some();
    // `P{id}/` answers the same method: P's own is about all the items.
    let item_too = paths.as_object().unwrap().iter().any(|(p, item)| {
        p.strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('{') && rest.trim_end_matches('/').ends_with('}'))
            && item.get(method).is_some()
    });
    let action = match method {
        "get" if collection => "list",
        "get" => "retrieve",
        "post" => "create",
        "put" => "update",
        "patch" => "partial_update",
        "delete" if item_too => "destroy_all",
        "delete" => "destroy",
        other => panic!("unexpected method {other}"),
    };
    format!("{}_{action}", words.join("_").trim_start_matches('_'))
}

#[test]
fn every_operation_has_a_stable_unique_id_a_summary_and_a_description() {
    let doc = document();
    let mut seen = HashSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(seen.insert(id.to_owned()), "duplicate operationId {id}");
        assert_eq!(
            id,
            expected_operation_id(&path, &method, &op, &doc["paths"]),
            "{method} {path}"
        );
        for field in ["summary", "description"] {
            let text = op[field].as_str().unwrap_or_default();
            assert!(text.len() > 5, "{id} has no {field}");
        }
        assert!(
            !op["summary"].as_str().unwrap().ends_with('.'),
            "{id}: a summary is a title"
        );
    }
    assert!(seen.contains("auth_users_me_retrieve") && seen.contains("token_create"));
}

#[test]
fn error_answers_are_documented_only_where_they_can_happen() {
    let doc = document();
    for (path, _, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap();
        let responses = op["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        let reads_body = op.get("requestBody").is_some();
        let authenticates = op.get("security").is_some();
        for status in ["400", "413", "415"] {
            // Starting a TOTP enrolment reads no body, yet is refused while TOTP is active.
            let bodiless_400 = status == "400" && id == "auth_mfa_totp_create";
            assert_eq!(has(status), reads_body || bodiless_400, "{id} {status}");
        }
        assert_eq!(
            has("401"),
            authenticates || PUBLIC_401.contains(&id),
            "{id} 401"
        );
        assert_eq!(
            has("503"),
            !NO_STORE.contains(&id),
            "{id} 503 (a store or the hashing pool)"
        );
        // Every operation but the probes is rate-limited (throttle::Limited).
        assert_eq!(has("429"), !path.starts_with("/health/"), "{id} 429");
        if path.contains('{') {
            assert!(has("404"), "{id}: a path parameter can name nothing");
        }
        assert!(!has("500") && !has("405"), "{id}");
        for (status, response) in responses {
            let headers = &response["headers"];
            assert_eq!(headers["X-Request-Id"]["required"], true, "{id} {status}");
            let required = |name: &str| headers[name]["required"] == true;
            match status.as_str() {
                "401" => assert!(required("WWW-Authenticate"), "{id} {status}"),
                "429" => {
                    assert!(required("Retry-After"), "{id} {status}");
                    for name in ["Limit", "Remaining", "Reset"] {
                        let header = &headers[format!("X-RateLimit-{name}")];
                        assert_eq!(header["schema"]["type"], "integer", "{id} {status}");
                    }
                }
                "503" => assert!(required("Retry-After"), "{id} {status}"),
                _ => {}
            }
            let bare = id == "auth_users_resend_activation_create" && status == "400";
            let probe = id == "health_ready_retrieve";
            if status.starts_with(['4', '5']) && !bare && !probe {
                let media = &response["content"]["application/json"];
                assert!(media["example"].is_object(), "{id} {status}: an example");
                assert!(media["schema"].is_object(), "{id} {status}: a schema");
            }
        }
    }
}

#[test]
fn error_bodies_have_schemas_a_typed_client_can_read() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let error = &schemas["Error"];
    assert_eq!(error["required"], serde_json::json!(["detail", "code"]));
    assert_eq!(
        schemas["TokenError"]["required"],
        serde_json::json!(["detail", "code", "messages"])
    );
    let message = &schemas["TokenErrorMessage"]["required"];
    assert_eq!(
        message,
        &serde_json::json!(["token_class", "token_type", "message"])
    );
    let fields = &schemas["ValidationError"];
    assert_eq!(fields["additionalProperties"]["type"], "array");
    assert_eq!(fields["additionalProperties"]["items"]["type"], "string");
    assert_eq!(fields["properties"]["non_field_errors"]["type"], "array");
    let register = &doc["paths"]["/auth/users/"]["post"]["responses"]["400"];
    let one_of = &register["content"]["application/json"]["schema"]["oneOf"];
    assert_eq!(
        one_of,
        &serde_json::json!([
            {"$ref": "#/components/schemas/ValidationError"},
            {"$ref": "#/components/schemas/Error"}
        ])
    );
    let me = &doc["paths"]["/auth/users/me/"]["get"]["responses"]["401"];
    let any_of = &me["content"]["application/json"]["schema"]["anyOf"];
    assert_eq!(any_of[0]["$ref"], "#/components/schemas/TokenError");
    // The example bodies are what the code answers.
    let login = &doc["paths"]["/api/token/"]["post"]["responses"]["401"];
    assert_eq!(
        login["content"]["application/json"]["example"]["code"],
        "no_active_account"
    );
}

#[test]
fn djoser_paths_keep_the_slash_and_bodies_are_json_or_forms() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/auth/users/") && paths.contains_key("/auth/users/{id}/"));
    for (_, _, op) in operations(&doc) {
        if let Some(body) = op.get("requestBody") {
            let content = body["content"].as_object().unwrap();
            assert!(
                content.contains_key("application/json")
                    && content.contains_key("application/x-www-form-urlencoded")
            );
        }
    }
}

/// Found by schemathesis: `null` answers must be allowed by the schema (sessions never used
/// or never expiring, the first and last page of users).
#[test]
fn fields_answered_as_null_are_nullable() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("TokenSession", "last_used"),
        ("TokenSession", "expires"),
        ("PaginatedUserList", "next"),
        ("PaginatedUserList", "previous"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["nullable"], true,
            "{schema}.{field}"
        );
    }
}
