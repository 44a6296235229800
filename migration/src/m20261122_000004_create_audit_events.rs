use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The optional SQL copy of the audit log (`audit.store_in_sql`), pruned after `audit.retention`.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(pk_uuid(AuditEvents::Id))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string_len(AuditEvents::Event, 100))
                    .col(string_len_null(AuditEvents::UserId, 64))
                    .col(string_len_null(AuditEvents::ActorId, 64))
                    .col(string_len(AuditEvents::RequestId, 64))
                    .col(string_len(AuditEvents::Peer, 64))
                    .col(string_len(AuditEvents::UserAgent, 300))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Event,
    UserId,
    ActorId,
    RequestId,
    Peer,
    UserAgent,
}
