//! The store conformance suite: the behaviour every store backend must show, one function per
//! behaviour written once and run on the embedded SQLite store and on DynamoDB (moto), each on a
//! fresh store. The doc comments of the traits in `accounts::store` are the specification.

mod fixtures;

mod account;
mod blacklist;
mod sessions;
mod throttle;
mod users;

mod dynamodb_only;
mod sqlite_only;

/// A fresh, empty store of each backend.
mod backends {
    use std::sync::Arc;

    use accounts::store::sqlite::SqliteStore;
    use accounts::store::SharedStore;

    pub async fn sqlite() -> SharedStore {
        // The folder must outlive the test's store: leak it (the OS temp dir is cleaned anyway).
        let dir = tempfile::tempdir().unwrap().keep();
        Arc::new(SqliteStore::open(&dir).unwrap())
    }

    /// On new tables of the emulator at `DYNAMODB_ENDPOINT`; without it the tests fail: a
    /// skipped backend must never look like a passing one.
    pub async fn dynamodb() -> SharedStore {
        Arc::new(testkit::dynamo::fresh_dynamo().await.0)
    }
}
