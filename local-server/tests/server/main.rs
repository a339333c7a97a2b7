//! The local server over real HTTP, in one test binary: the binary started as a user starts it
//! (`support::Server`), driven with reqwest.

mod support;

mod account_page;
mod attacks;
mod avatars;
mod journey;
mod password_reset;
