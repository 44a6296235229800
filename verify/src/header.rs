//! The `Authorization` header, read the way SimpleJWT's JWTAuthentication reads it.

/// Why no token could be taken from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No header, an empty one or another scheme: "Authentication credentials were not provided."
    Missing,
    /// `Bearer` alone or with more than one value.
    Malformed,
}

/// The token of an `Authorization: Bearer <token>` header (the word is case-sensitive, as in
/// SimpleJWT).
pub fn bearer_token(header: Option<&str>) -> Result<&str, BearerError> {
    let parts: Vec<&str> = header.unwrap_or_default().split_whitespace().collect();
    match parts.as_slice() {
        ["Bearer", token] => Ok(token),
        ["Bearer", ..] => Err(BearerError::Malformed),
        _ => Err(BearerError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_like_simplejwt() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some("")), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some("bearer abc")), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some("Token abc")), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some("Bearer")), Err(BearerError::Malformed));
        assert_eq!(
            bearer_token(Some("Bearer a b")),
            Err(BearerError::Malformed)
        );
    }
}
