use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Opaque keys (DRF's authtoken): only their SHA-256 is stored.
        manager
            .create_table(
                Table::create()
                    .table(AuthTokens::Table)
                    .if_not_exists()
                    .col(string_len(AuthTokens::KeySha256, 64).primary_key())
                    .col(uuid(AuthTokens::UserId))
                    .col(string_len(AuthTokens::Nonce, 64))
                    .col(string_len(AuthTokens::Name, 200))
                    .col(timestamp_with_time_zone(AuthTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(AuthTokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(AuthTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_tokens_user")
                    .table(AuthTokens::Table)
                    .col(AuthTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuthTokens {
    Table,
    KeySha256,
    UserId,
    Nonce,
    Name,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
}
