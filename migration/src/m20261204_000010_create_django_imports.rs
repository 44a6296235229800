//! The Django hash each imported user was last brought over with, so a re-run of
//! `tessera import-django` keeps the argon2id hash a login upgraded it to (while Django still
//! has the same hash) and brings a password changed in Django over.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DjangoImports::Table)
                    .if_not_exists()
                    .col(pk_uuid(DjangoImports::UserId))
                    .col(string_len(DjangoImports::PasswordSeen, 256))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DjangoImports::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DjangoImports {
    Table,
    UserId,
    PasswordSeen,
}
