pub mod secret;
pub mod sign;
