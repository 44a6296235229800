//! Schema migrations, applied by `tessera migrate` and (by default) at start.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_jwt_tables;
mod m20261122_000003_create_auth_tokens;
mod m20261122_000004_create_audit_events;
mod m20261122_000005_create_groups;
mod m20261202_000006_add_credential_versions;
mod m20261202_000007_widen_username_key;
mod m20261202_000008_create_revocation_sequence;
mod m20261204_000009_add_user_numbers;
mod m20261204_000010_create_django_imports;
mod m20261205_000011_create_sessions;
mod m20261205_000012_create_mfa;

/// The ordered list of Tessera's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_jwt_tables::Migration),
            Box::new(m20261122_000003_create_auth_tokens::Migration),
            Box::new(m20261122_000004_create_audit_events::Migration),
            Box::new(m20261122_000005_create_groups::Migration),
            Box::new(m20261202_000006_add_credential_versions::Migration),
            Box::new(m20261202_000007_widen_username_key::Migration),
            Box::new(m20261202_000008_create_revocation_sequence::Migration),
            Box::new(m20261204_000009_add_user_numbers::Migration),
            Box::new(m20261204_000010_create_django_imports::Migration),
            Box::new(m20261205_000011_create_sessions::Migration),
            Box::new(m20261205_000012_create_mfa::Migration),
        ]
    }
}
