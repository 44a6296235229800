//! sea-orm entities: storage rows only; HTTP bodies and domain types are separate.
pub mod user;
