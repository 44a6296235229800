//! The revocation sequence: one counter, raised by every revocation written to SQL. Redis keeps
//! the value it has seen; an instance that finds Redis behind SQL stops trusting it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevocationSequence::Table)
                    .if_not_exists()
                    .col(integer(RevocationSequence::Id).primary_key())
                    .col(big_integer(RevocationSequence::Value).default(0))
                    .to_owned(),
            )
            .await?;
        let mut first = Query::insert();
        first
            .into_table(RevocationSequence::Table)
            .columns([RevocationSequence::Id, RevocationSequence::Value])
            .values([1.into(), 0.into()])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        manager.exec_stmt(first).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevocationSequence::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RevocationSequence {
    Table,
    Id,
    Value,
}
