//! The case-insensitive key of a 150-character username can be longer than 150 characters
//! (lowercase `İ` is two): PostgreSQL refused such keys with an error. SQLite ignores lengths.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Lowercasing at most doubles a name (only `İ` grows); three times is room to spare.
const KEY_CHARS: u32 = 450;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .modify_column(string_len(Users::UsernameKey, KEY_CHARS))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .modify_column(string_len(Users::UsernameKey, 150))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    UsernameKey,
}
