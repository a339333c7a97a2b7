//! Shared by the store test binaries: the conformance suite every backend must pass.
//!
//! A backend's test file does
//!
//! ```ignore
//! #[macro_use]
//! mod common;
//!
//! store_conformance_tests!(async { /* build a fresh, empty store */ as SharedStore });
//! ```
//!
//! The argument is an expression evaluating to a `Future<Output = SharedStore>` (an `async`
//! block, or a call to an `async fn`); it is evaluated once per test, so every test starts from
//! a fresh, isolated store. Anything the store needs to stay alive (a temporary directory) must be
//! kept alive by the store itself or leaked.

pub mod conformance;

/// Expands to one `#[tokio::test]` per behaviour of [`conformance`].
macro_rules! store_conformance_tests {
    ($make:expr) => {
        store_conformance_tests!(@each $make;
            create_user_allocates_increasing_ids,
            create_user_writes_user_and_first_session,
            username_is_unique_case_insensitively,
            email_is_unique_case_insensitively,
            username_taken_wins_over_email_taken,
            failed_create_writes_nothing,
            empty_emails_never_collide,
            cjk_usernames_work,
            insert_user_keeps_id_and_moves_counter_past_it,
            insert_user_refuses_taken_id_username_and_email,
            missing_users_read_as_none,
            email_in_use_is_case_insensitive,
            find_active_users_by_email_is_case_insensitive,
            find_active_users_by_email_skips_inactive_users,
            update_user_changes_profile_fields,
            update_user_username_change_frees_the_old_name,
            update_user_to_a_taken_username_writes_nothing,
            update_user_case_only_rename,
            update_user_sets_and_clears_avatar,
            update_user_missing_user_is_user_not_found,
            update_user_empty_update_returns_the_user,
            replace_password_hash_is_compare_and_set,
            parallel_password_replacements_from_one_hash_succeed_once,
            a_new_password_ends_the_sessions_of_the_old_one_but_the_kept_one,
            look_alike_usernames_are_taken,
            start_session_records_last_login,
            start_session_for_missing_user_writes_nothing,
            session_with_user_reads_both,
            session_with_user_missing_parts_read_as_none,
            session_with_user_expired_session_reads_as_none,
            session_with_user_other_users_session_reads_as_none,
            rotate_refresh_happy_path,
            rotate_refresh_replay_is_blacklisted,
            rotate_refresh_wrong_jti_is_session_ended,
            rotate_refresh_expired_or_foreign_session_is_session_ended,
            rotate_refresh_inactive_user,
            rotate_refresh_missing_user,
            rotate_refresh_checks_blacklist_first,
            rotate_refresh_ignores_expired_blacklist_entries,
            concurrent_rotations_of_one_token_rotate_once,
            logout_ends_session_then_already_blacklisted,
            logout_with_non_current_token_still_blacklists,
            logout_without_session_still_blacklists,
            logout_after_blacklist_entry_expired,
            end_session_ends_only_that_session,
            end_sessions_keeps_the_kept_one,
            end_sessions_ends_all_without_keep,
            blacklisted_ignores_expired_entries,
            purge_expired_never_removes_live_rows,
            reserve_admits_up_to_the_limit_per_window,
            reserve_is_all_or_nothing,
            parallel_reservations_admit_exactly_the_limit,
            release_gives_the_places_back,
            login_lookup_reads_user_and_usage,
        );
    };
    (@each $make:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let store: ::accounts::store::SharedStore = ($make).await;
                crate::common::conformance::$test(store).await;
            }
        )+
    };
}
