use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One TOTP factor per user: the secret sealed (AEAD, bound to the user id), pending
        // until confirmed, and the last time-step accepted (a code is good once).
        manager
            .create_table(
                Table::create()
                    .table(MfaTotp::Table)
                    .if_not_exists()
                    .col(uuid(MfaTotp::UserId).primary_key())
                    .col(string_len(MfaTotp::SecretSealed, 200))
                    .col(boolean(MfaTotp::Confirmed))
                    .col(big_integer(MfaTotp::LastStep))
                    .col(timestamp_with_time_zone(MfaTotp::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Recovery codes: only their SHA-256; a used code's row is deleted.
        manager
            .create_table(
                Table::create()
                    .table(MfaRecoveryCodes::Table)
                    .if_not_exists()
                    .col(string_len(MfaRecoveryCodes::CodeSha256, 64).primary_key())
                    .col(uuid(MfaRecoveryCodes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mfa_recovery_codes_user")
                    .table(MfaRecoveryCodes::Table)
                    .col(MfaRecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        // The tokens a right password gets while the second factor is pending: SHA-256 only,
        // bound to the user, the login kind and the user's credential version; deleted on use.
        manager
            .create_table(
                Table::create()
                    .table(MfaTokens::Table)
                    .if_not_exists()
                    .col(string_len(MfaTokens::TokenSha256, 64).primary_key())
                    .col(uuid(MfaTokens::UserId))
                    .col(string_len(MfaTokens::Kind, 16))
                    .col(big_integer(MfaTokens::CredentialVersion))
                    .col(timestamp_with_time_zone(MfaTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mfa_tokens_user")
                    .table(MfaTokens::Table)
                    .col(MfaTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MfaTokens::Table.into_iden(),
            MfaRecoveryCodes::Table.into_iden(),
            MfaTotp::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MfaTotp {
    Table,
    UserId,
    SecretSealed,
    Confirmed,
    LastStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MfaRecoveryCodes {
    Table,
    CodeSha256,
    UserId,
}

#[derive(DeriveIden)]
enum MfaTokens {
    Table,
    TokenSha256,
    UserId,
    Kind,
    CredentialVersion,
    ExpiresAt,
}
