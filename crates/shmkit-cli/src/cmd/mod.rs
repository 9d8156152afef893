//! One module per command.

pub mod bench;
pub mod create;
pub mod gc;
pub mod info;
pub mod ls;
pub mod numa;
pub mod ring_stat;
pub mod rm;
