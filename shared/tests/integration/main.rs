//! The library's integration tests, in one binary: each test binary links the AWS SDKs, so one
//! instead of twenty saves minutes of linking. Modules by concern; what the tests share is the
//! `testkit` crate. The DynamoDB and S3 parts need the emulator `scripts/test` starts.

/// Defines each test once, as a plain `async fn`, and runs it on every backend named in the
/// brackets: one `#[tokio::test]` per backend, in a module of that name, handing the test what
/// `backends::<name>()` (in scope where this is used) returns. So a suite lists its tests once,
/// and a backend added to the brackets runs all of them.
macro_rules! conformance {
    ([$($backend:ident),+ $(,)?] $tests:tt) => {
        conformance!(@define $tests);
        $( conformance!(@run $backend $tests); )+
    };
    (@define { $( $(#[$meta:meta])* async fn $name:ident($arg:ident: $ty:ty) $body:block )* }) => {
        $( $(#[$meta])* async fn $name($arg: $ty) $body )*
    };
    (@run $backend:ident { $( $(#[$meta:meta])* async fn $name:ident($arg:ident: $ty:ty) $body:block )* }) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::backends::$backend().await).await;
                }
            )*
        }
    };
}

mod attacks;
mod avatar_http;
mod dynamodb_round_trips;
mod http_account;
mod http_contract;
mod http_faults;
mod http_journey;
mod http_passwords;
mod http_refresh_reuse;
mod http_sessions;
mod http_throttle;
mod legacy_tokens;
mod logs;
mod mail;
mod media;
mod openapi;
mod store;
