use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Issued refresh tokens (SimpleJWT's OutstandingToken), with their family for reuse detection.
        manager
            .create_table(
                Table::create()
                    .table(JwtOutstanding::Table)
                    .if_not_exists()
                    .col(string_len(JwtOutstanding::Jti, 64).primary_key())
                    .col(uuid(JwtOutstanding::UserId))
                    .col(uuid(JwtOutstanding::Family))
                    .col(string_len_null(JwtOutstanding::ParentJti, 64))
                    .col(string_len(JwtOutstanding::AccessJti, 64))
                    .col(timestamp_with_time_zone(JwtOutstanding::AccessExpiresAt))
                    .col(string_len(JwtOutstanding::TokenSha256, 64))
                    .col(timestamp_with_time_zone(JwtOutstanding::CreatedAt))
                    .col(timestamp_with_time_zone(JwtOutstanding::ExpiresAt))
                    .col(timestamp_with_time_zone_null(JwtOutstanding::RotatedAt))
                    .col(boolean(JwtOutstanding::GraceUsed))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_jwt_outstanding_family", JwtOutstanding::Family),
            ("idx_jwt_outstanding_parent", JwtOutstanding::ParentJti),
            ("idx_jwt_outstanding_expires", JwtOutstanding::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(JwtOutstanding::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        // Revoked JTIs (SimpleJWT's BlacklistedToken), kept until the token would expire anyway.
        manager
            .create_table(
                Table::create()
                    .table(JwtRevoked::Table)
                    .if_not_exists()
                    .col(string_len(JwtRevoked::Jti, 64).primary_key())
                    .col(uuid_null(JwtRevoked::UserId))
                    .col(timestamp_with_time_zone(JwtRevoked::RevokedAt))
                    .col(timestamp_with_time_zone(JwtRevoked::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jwt_revoked_expires")
                    .table(JwtRevoked::Table)
                    .col(JwtRevoked::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // Per-user cut-offs: tokens issued before `not_before` (unix seconds) are revoked.
        manager
            .create_table(
                Table::create()
                    .table(JwtUserCutoffs::Table)
                    .if_not_exists()
                    .col(uuid(JwtUserCutoffs::UserId).primary_key())
                    .col(big_integer(JwtUserCutoffs::NotBefore))
                    .col(timestamp_with_time_zone(JwtUserCutoffs::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JwtOutstanding::Table.into_iden(),
            JwtRevoked::Table.into_iden(),
            JwtUserCutoffs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum JwtOutstanding {
    Table,
    Jti,
    UserId,
    Family,
    ParentJti,
    AccessJti,
    AccessExpiresAt,
    TokenSha256,
    CreatedAt,
    ExpiresAt,
    RotatedAt,
    GraceUsed,
}

#[derive(DeriveIden)]
enum JwtRevoked {
    Table,
    Jti,
    UserId,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum JwtUserCutoffs {
    Table,
    UserId,
    NotBefore,
    ExpiresAt,
}
