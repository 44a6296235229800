//! Reading a Django project's users, groups, DRF keys and SimpleJWT tokens: from its database
//! (PostgreSQL or SQLite, read only) or from `manage.py dumpdata auth authtoken token_blacklist
//! --natural-foreign` JSON.
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{
    ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, QueryResult, Statement,
};
use serde_json::Value;

use crate::domain::import::{DjangoExport, DjangoKey, DjangoRefresh, DjangoUser};

#[derive(Debug, thiserror::Error)]
pub enum DjangoSourceError {
    #[error("cannot read the Django database: {0}")]
    Database(String),
    #[error("cannot read the dumpdata file: {0}")]
    Dump(String),
}

fn db_err(e: sea_orm::DbErr) -> DjangoSourceError {
    DjangoSourceError::Database(e.to_string())
}

/// Django writes UTC datetimes (`USE_TZ = True`); SQLite keeps them as text, PostgreSQL as
/// `timestamptz` (read as text here, so both go through one parser).
fn datetime(text: &str) -> Option<DateTime<Utc>> {
    // PostgreSQL writes the session's offset (`+00`, `+01`, `+05:30`).
    let with_offset = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"));
    if let Ok(t) = with_offset {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

fn text(row: &QueryResult, col: &str) -> Result<String, DjangoSourceError> {
    row.try_get::<Option<String>>("", col)
        .map(Option::unwrap_or_default)
        .map_err(db_err)
}

fn int(row: &QueryResult, col: &str) -> Result<i64, DjangoSourceError> {
    row.try_get::<i64>("", col).map_err(db_err)
}

fn when(row: &QueryResult, col: &str) -> Result<Option<DateTime<Utc>>, DjangoSourceError> {
    let raw = text(row, col)?;
    if raw.is_empty() {
        return Ok(None);
    }
    datetime(&raw)
        .map(Some)
        .ok_or_else(|| DjangoSourceError::Database(format!("{col}: not a datetime: {raw:?}")))
}

/// Reads the project's database (never writes to it).
pub async fn from_database(url: &str) -> Result<DjangoExport, DjangoSourceError> {
    // Statements are not logged: the operator's log is not the place for another service's data.
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    let db = Database::connect(options).await.map_err(db_err)?;
    let mut export = DjangoExport::default();
    if !table_exists(&db, "auth_user").await? {
        return Err(DjangoSourceError::Database(
            "no auth_user table: is this the Django project's database?".into(),
        ));
    }
    let query = |sql: &str| Statement::from_string(db.get_database_backend(), sql.to_owned());
    let mut groups: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for row in db
        .query_all_raw(query(
            "SELECT CAST(m.user_id AS BIGINT) AS user_id, g.name AS name \
             FROM auth_user_groups m JOIN auth_group g ON g.id = m.group_id",
        ))
        .await
        .map_err(db_err)?
    {
        groups
            .entry(int(&row, "user_id")?)
            .or_default()
            .insert(text(&row, "name")?);
    }
    for row in db
        .query_all_raw(query("SELECT name FROM auth_group"))
        .await
        .map_err(db_err)?
    {
        export.groups.insert(text(&row, "name")?);
    }
    for row in db
        .query_all_raw(query(
            "SELECT CAST(id AS BIGINT) AS id, username, email, first_name, last_name, password, \
             CAST(is_active AS INTEGER) AS is_active, CAST(is_staff AS INTEGER) AS is_staff, \
             CAST(is_superuser AS INTEGER) AS is_superuser, CAST(date_joined AS TEXT) AS date_joined, \
             CAST(last_login AS TEXT) AS last_login FROM auth_user ORDER BY id",
        ))
        .await
        .map_err(db_err)?
    {
        let id = int(&row, "id")?;
        let flag = |col: &str| -> Result<bool, DjangoSourceError> {
            Ok(row.try_get::<i32>("", col).map_err(db_err)? != 0)
        };
        export.users.push(DjangoUser {
            id,
            username: text(&row, "username")?,
            email: text(&row, "email")?,
            first_name: text(&row, "first_name")?,
            last_name: text(&row, "last_name")?,
            password: text(&row, "password")?,
            is_active: flag("is_active")?,
            is_staff: flag("is_staff")?,
            is_superuser: flag("is_superuser")?,
            date_joined: when(&row, "date_joined")?.unwrap_or_else(Utc::now),
            last_login: when(&row, "last_login")?,
            groups: groups.remove(&id).unwrap_or_default(),
        });
    }
    if table_exists(&db, "authtoken_token").await? {
        for row in db
            .query_all_raw(query(
                "SELECT key, CAST(user_id AS BIGINT) AS user_id, CAST(created AS TEXT) AS created \
                 FROM authtoken_token",
            ))
            .await
            .map_err(db_err)?
        {
            export.keys.push(DjangoKey {
                key: text(&row, "key")?,
                user: int(&row, "user_id")?,
                created: when(&row, "created")?.unwrap_or_else(Utc::now),
            });
        }
    } else {
        export.missing.push("authtoken (DRF keys)".into());
    }
    if table_exists(&db, "token_blacklist_outstandingtoken").await? {
        for row in db
            .query_all_raw(query(
                "SELECT o.jti AS jti, CAST(o.user_id AS BIGINT) AS user_id, o.token AS token, \
                 CAST(o.created_at AS TEXT) AS created_at, CAST(o.expires_at AS TEXT) AS expires_at, \
                 CAST(b.id AS BIGINT) AS blacklisted \
                 FROM token_blacklist_outstandingtoken o \
                 LEFT JOIN token_blacklist_blacklistedtoken b ON b.token_id = o.id",
            ))
            .await
            .map_err(db_err)?
        {
            export.refresh_tokens.push(DjangoRefresh {
                jti: text(&row, "jti")?,
                user: row.try_get::<Option<i64>>("", "user_id").map_err(db_err)?,
                token: text(&row, "token")?,
                created_at: when(&row, "created_at")?,
                expires_at: when(&row, "expires_at")?.unwrap_or_else(Utc::now),
                blacklisted: row
                    .try_get::<Option<i64>>("", "blacklisted")
                    .map_err(db_err)?
                    .is_some(),
            });
        }
    } else {
        export
            .missing
            .push("token_blacklist (SimpleJWT's outstanding tokens)".into());
    }
    Ok(export)
}

/// `name` is one of this file's constants (letters and underscores), never input.
async fn table_exists(
    db: &DatabaseConnection,
    name: &'static str,
) -> Result<bool, DjangoSourceError> {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Sqlite => format!(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{name}'"
        ),
        _ => format!(
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_name = '{name}' AND table_schema = current_schema()"
        ),
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(db_err)?;
    Ok(row.map(|r| int(&r, "n")).transpose()?.unwrap_or(0) > 0)
}

/// Reads `manage.py dumpdata auth authtoken token_blacklist --natural-foreign` (or the same
/// without natural keys: user references by id are understood too).
pub fn from_dumpdata(json: &str) -> Result<DjangoExport, DjangoSourceError> {
    let bad = |what: String| DjangoSourceError::Dump(what);
    let objects: Vec<Value> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let mut export = DjangoExport::default();
    let mut ids_by_name: HashMap<String, i64> = HashMap::new();
    let mut group_names: HashMap<i64, String> = HashMap::new();
    let mut outstanding: HashMap<i64, DjangoRefresh> = HashMap::new();
    let mut blacklisted: Vec<i64> = Vec::new();
    let mut saw = (false, false);
    let s = |f: &Value, k: &str| f[k].as_str().unwrap_or_default().to_owned();
    let t = |f: &Value, k: &str| f[k].as_str().and_then(datetime);
    // Groups first: users name them by natural key or by id.
    for o in &objects {
        if o["model"] == "auth.group" {
            let name = s(&o["fields"], "name");
            if let Some(pk) = o["pk"].as_i64() {
                group_names.insert(pk, name.clone());
            }
            export.groups.insert(name);
        }
    }
    for o in &objects {
        let f = &o["fields"];
        match o["model"].as_str().unwrap_or_default() {
            "auth.user" => {
                let id = o["pk"]
                    .as_i64()
                    .ok_or_else(|| bad(format!("a user without an integer pk: {o}")))?;
                let groups = f["groups"]
                    .as_array()
                    .map(|gs| {
                        gs.iter()
                            .filter_map(|g| match g {
                                Value::Array(natural) => {
                                    natural.first().and_then(Value::as_str).map(str::to_owned)
                                }
                                Value::Number(n) => {
                                    n.as_i64().and_then(|n| group_names.get(&n).cloned())
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ids_by_name.insert(s(f, "username"), id);
                export.users.push(DjangoUser {
                    id,
                    username: s(f, "username"),
                    email: s(f, "email"),
                    first_name: s(f, "first_name"),
                    last_name: s(f, "last_name"),
                    password: s(f, "password"),
                    is_active: f["is_active"].as_bool().unwrap_or(true),
                    is_staff: f["is_staff"].as_bool().unwrap_or(false),
                    is_superuser: f["is_superuser"].as_bool().unwrap_or(false),
                    date_joined: t(f, "date_joined").unwrap_or_else(Utc::now),
                    last_login: t(f, "last_login"),
                    groups,
                });
            }
            "authtoken.token" => saw.0 = true,
            "token_blacklist.outstandingtoken" => saw.1 = true,
            _ => {}
        }
    }
    // A user reference: a natural key (`["alice"]`) or an id.
    let user_of = |v: &Value| -> Option<i64> {
        match v {
            Value::Array(natural) => natural
                .first()
                .and_then(Value::as_str)
                .and_then(|n| ids_by_name.get(n).copied()),
            other => other.as_i64(),
        }
    };
    for o in &objects {
        let f = &o["fields"];
        match o["model"].as_str().unwrap_or_default() {
            "authtoken.token" => {
                let key = o["pk"].as_str().unwrap_or_default().to_owned();
                let user = user_of(&f["user"])
                    .ok_or_else(|| bad(format!("a key for an unknown user: {}", f["user"])))?;
                export.keys.push(DjangoKey {
                    key,
                    user,
                    created: t(f, "created").unwrap_or_else(Utc::now),
                });
            }
            "token_blacklist.outstandingtoken" => {
                let pk = o["pk"].as_i64().unwrap_or_default();
                outstanding.insert(
                    pk,
                    DjangoRefresh {
                        jti: s(f, "jti"),
                        user: user_of(&f["user"]),
                        token: s(f, "token"),
                        created_at: t(f, "created_at"),
                        expires_at: t(f, "expires_at").ok_or_else(|| {
                            bad(format!("an outstanding token without expires_at: {o}"))
                        })?,
                        blacklisted: false,
                    },
                );
            }
            "token_blacklist.blacklistedtoken" => {
                if let Some(id) = f["token"].as_i64() {
                    blacklisted.push(id);
                }
            }
            _ => {}
        }
    }
    for id in blacklisted {
        if let Some(t) = outstanding.get_mut(&id) {
            t.blacklisted = true;
        }
    }
    let mut tokens: Vec<(i64, DjangoRefresh)> = outstanding.into_iter().collect();
    tokens.sort_by_key(|(pk, _)| *pk);
    export.refresh_tokens = tokens.into_iter().map(|(_, t)| t).collect();
    if !saw.0 {
        export
            .missing
            .push("authtoken (DRF keys): none in the file".into());
    }
    if !saw.1 {
        export
            .missing
            .push("token_blacklist (SimpleJWT's outstanding tokens): none in the file".into());
    }
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn djangos_datetimes_from_sqlite_postgres_and_dumpdata() {
        let expected = "2026-12-04T20:59:18.131793Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        for raw in [
            "2026-12-04 20:59:18.131793",
            "2026-12-04 20:59:18.131793+00",
            "2026-12-04 20:59:18.131793+00:00",
            "2026-12-04T20:59:18.131793Z",
            "2026-12-04 21:59:18.131793+01",
        ] {
            assert_eq!(datetime(raw), Some(expected), "{raw}");
        }
        assert_eq!(datetime("yesterday"), None);
    }

    #[test]
    fn dumpdata_with_natural_keys() {
        let json = r#"[
          {"model": "auth.group", "pk": 1, "fields": {"name": "managers", "permissions": []}},
          {"model": "token_blacklist.blacklistedtoken", "pk": 1, "fields": {"token": 2, "blacklisted_at": "2026-12-04T20:59:18.761Z"}},
          {"model": "auth.user", "pk": 2, "fields": {"password": "argon2$x", "last_login": null, "is_superuser": false, "username": "bob", "first_name": "", "last_name": "", "email": "bob@example.com", "is_staff": false, "is_active": true, "date_joined": "2026-12-04T20:59:18.610Z", "groups": [["managers"]], "user_permissions": []}},
          {"model": "authtoken.token", "pk": "595f835634ab0e08e566402b0159db98cc4f11a3", "fields": {"user": ["bob"], "created": "2026-12-04T20:59:18.636Z"}},
          {"model": "token_blacklist.outstandingtoken", "pk": 2, "fields": {"user": ["bob"], "jti": "e707", "token": "eyJ", "created_at": "2026-12-04T20:59:18.739Z", "expires_at": "2026-12-05T20:59:18Z"}}
        ]"#;
        let export = from_dumpdata(json).unwrap();
        assert_eq!(export.users.len(), 1);
        assert_eq!(
            export.users[0].groups,
            BTreeSet::from(["managers".to_owned()])
        );
        assert_eq!(export.keys[0].user, 2);
        assert!(export.refresh_tokens[0].blacklisted);
        assert!(export.missing.is_empty());
        assert!(from_dumpdata("{}").is_err());
        assert!(from_dumpdata(r#"[{"model": "auth.user", "pk": "x", "fields": {}}]"#).is_err());
    }
}
