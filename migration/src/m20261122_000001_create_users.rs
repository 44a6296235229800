use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(pk_uuid(Users::Id))
                    .col(string_len(Users::Username, 150))
                    // Lower-cased username: the unique index that makes `Admin` and `admin` one name.
                    .col(string_len_uniq(Users::UsernameKey, 150))
                    .col(string_len(Users::Email, 254))
                    .col(string_len(Users::Password, 256))
                    .col(string_len(Users::FirstName, 150))
                    .col(string_len(Users::LastName, 150))
                    .col(boolean(Users::IsActive))
                    .col(boolean(Users::IsStaff))
                    .col(boolean(Users::IsSuperuser))
                    .col(timestamp_with_time_zone(Users::DateJoined))
                    .col(timestamp_with_time_zone_null(Users::LastLogin))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_username")
                    .table(Users::Table)
                    .col(Users::Username)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_email")
                    .table(Users::Table)
                    .col(Users::Email)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    Email,
    Password,
    FirstName,
    LastName,
    IsActive,
    IsStaff,
    IsSuperuser,
    DateJoined,
    LastLogin,
}
