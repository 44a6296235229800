//! The committed OpenAPI document must match what the code generates.
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

#[test]
fn every_operation_documents_its_errors_and_djoser_paths_keep_the_slash() {
    let spec: serde_json::Value = serde_json::from_str(&tessera::http::openapi_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/auth/users/") && paths.contains_key("/auth/users/{id}/"));
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if path.starts_with("/auth/") {
                assert!(
                    responses.contains_key("400") && responses.contains_key("503"),
                    "{method} {path}"
                );
            }
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().unwrap();
                assert!(
                    content.contains_key("application/json")
                        && content.contains_key("application/x-www-form-urlencoded")
                );
            }
        }
    }
}
