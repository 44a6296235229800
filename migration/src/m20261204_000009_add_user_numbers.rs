//! Integer user ids (Django's `pk`), beside the UUID that stays the internal key: every user gets
//! a number, imported users keep their Django id, new users continue after the highest one.
//! Numbers come from a counter that only goes up, so a deleted user's number is never given to
//! someone else (a token minted for the deleted user would otherwise name the new one).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(big_integer(Users::Number).default(0))
                    .to_owned(),
            )
            .await?;
        // Existing users are numbered in creation order (UUIDv7 ids sort by creation).
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE users SET number = (SELECT COUNT(*) FROM users AS earlier WHERE earlier.id <= users.id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_number")
                    .table(Users::Table)
                    .col(Users::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserNumbers::Table)
                    .if_not_exists()
                    .col(integer(UserNumbers::Id).primary_key())
                    .col(big_integer(UserNumbers::Last).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO user_numbers (id, last) SELECT 1, COALESCE(MAX(number), 0) FROM users",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserNumbers::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_number")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Number)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Number,
}

#[derive(DeriveIden)]
enum UserNumbers {
    Table,
    Id,
    Last,
}
