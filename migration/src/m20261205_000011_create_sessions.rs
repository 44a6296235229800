//! Sessions: the details of each login (a JWT family or an opaque key) that the ledger and the
//! key rows do not keep: when and from where it logged in and was last used. Whether a session
//! is still alive is read from the ledger and the keys themselves, so families and keys issued
//! before this migration are listed too (without those details) and need no backfill.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    // A JWT session's id is its family; a key's is derived from the key's hash.
                    .col(uuid(Sessions::Id).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(string_len(Sessions::Kind, 8))
                    .col(string_len_null(Sessions::KeySha256, 64))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastUsedAt))
                    .col(string_len_null(Sessions::LoginIp, 45))
                    .col(string_len(Sessions::LoginUserAgent, 256))
                    .col(string_len_null(Sessions::LastIp, 45))
                    .col(string_len(Sessions::LastUserAgent, 256))
                    .col(timestamp_with_time_zone_null(Sessions::ExpiresAt))
                    .col(big_integer(Sessions::CredentialVersion))
                    .to_owned(),
            )
            .await?;
        for (name, table, column) in [
            (
                "idx_sessions_user",
                Sessions::Table.into_iden(),
                Sessions::UserId.into_iden(),
            ),
            (
                "idx_sessions_expires",
                Sessions::Table.into_iden(),
                Sessions::ExpiresAt.into_iden(),
            ),
            // The session list reads a user's live refresh tokens.
            (
                "idx_jwt_outstanding_user",
                JwtOutstanding::Table.into_iden(),
                JwtOutstanding::UserId.into_iden(),
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_jwt_outstanding_user")
                    .table(JwtOutstanding::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    Kind,
    KeySha256,
    CreatedAt,
    LastUsedAt,
    LoginIp,
    LoginUserAgent,
    LastIp,
    LastUserAgent,
    ExpiresAt,
    CredentialVersion,
}

#[derive(DeriveIden)]
enum JwtOutstanding {
    Table,
    UserId,
}
