//! The media conformance suite: every `MediaStore` backend (local folder, S3) must pass it.
//!
//! A backend's test file does `media_conformance_tests!(async { /* a fresh, empty store */ });`;
//! the expression is evaluated once per test. Anything the store needs to stay alive (a temporary
//! folder) must be kept alive by the store or leaked.

pub mod conformance;

macro_rules! media_conformance_tests {
    ($make:expr) => {
        media_conformance_tests!(@each $make;
            put_then_get_returns_bytes_and_content_type,
            put_replaces_an_object,
            missing_objects_read_as_none,
            size_reports_bytes_without_reading,
            get_at_most_reads_within_the_bound_only,
            delete_removes_and_missing_delete_is_fine,
            list_filters_by_prefix_in_key_order,
            keys_the_server_would_not_make_are_refused,
            upload_target_is_a_put_for_that_key,
            sweep_deletes_only_old_orphans_of_that_user,
        );
    };
    (@each $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let media: accounts::media::SharedMedia = $make.await;
                media_common::conformance::$name(media).await;
            }
        )+
    };
}
