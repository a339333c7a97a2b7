//! `UserStore`: ids, uniqueness of usernames (and their look-alikes) and e-mails, updates, passwords.

use super::backends;
use super::fixtures::*;

fn new_password(user: &User, expected: &str, new: &str, keep: Option<&str>) -> PasswordReplacement {
    PasswordReplacement {
        user_id: user.id,
        expected_hash: expected.into(),
        new_hash: new.into(),
        new_version: true,
        keep_session: keep.map(str::to_string),
    }
}

conformance!([sqlite, dynamodb] {
    async fn create_user_allocates_increasing_ids(store: SharedStore) {
        let (a, _) = register(&store, "alice", "alice@example.com").await;
        let (b, _) = register(&store, "bob", "").await;
        let (c, _) = register(&store, "carol", "carol@example.com").await;
        assert!(a.id > 0);
        assert!(a.id < b.id && b.id < c.id, "ids {} {} {}", a.id, b.id, c.id);
    }

    async fn create_user_writes_user_and_first_session(store: SharedStore) {
        let (user, first) = register(&store, "Alice", "alice@example.com").await;
        assert_eq!(user.username, "Alice");
        assert_eq!(user.email, "alice@example.com");
        assert_eq!(user.password_hash, HASH);
        assert_eq!(user.date_joined, NOW - 10);
        assert!(user.is_active);
        assert_eq!(user.avatar, None);
        assert_eq!(
            (user.first_name.as_str(), user.last_name.as_str()),
            ("", "")
        );
        assert_eq!((user.nickname.as_str(), user.signature.as_str()), ("", ""));

        assert_eq!(store.get_user(user.id).await.unwrap(), Some(user.clone()));
        assert_eq!(
            store.find_user_by_username("Alice").await.unwrap(),
            Some(user.clone())
        );
        assert!(store.email_in_use("alice@example.com").await.unwrap());

        let (u, s) = store
            .session_with_user(user.id, &first.id, NOW)
            .await
            .unwrap();
        assert_eq!(u, Some(user.clone()));
        assert_eq!(
            s,
            Some(first.clone()),
            "the first session carries the new user's id"
        );
    }

    async fn username_is_unique_case_insensitively(store: SharedStore) {
        let (alice, _) = register(&store, "Alice", "").await;
        let err = store
            .create_user(
                new_user("alice", "other@example.com"),
                session("s2", 0, "r2"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        let err = store
            .create_user(new_user("ALICE", ""), session("s3", 0, "r3"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        for name in ["alice", "ALICE", "aLiCe"] {
            assert_eq!(
                store.find_user_by_username(name).await.unwrap(),
                Some(alice.clone())
            );
        }
    }

    async fn email_is_unique_case_insensitively(store: SharedStore) {
        register(&store, "alice", "alice@example.com").await;
        let err = store
            .create_user(new_user("bob", "ALICE@Example.COM"), session("s2", 0, "r2"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EmailTaken), "{err:?}");
        assert!(store.email_in_use("Alice@Example.com").await.unwrap());
        assert_eq!(store.find_user_by_username("bob").await.unwrap(), None);
    }

    async fn username_taken_wins_over_email_taken(store: SharedStore) {
        register(&store, "alice", "alice@example.com").await;
        let err = store
            .create_user(
                new_user("Alice", "alice@example.com"),
                session("s2", 0, "r2"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    }

    async fn failed_create_writes_nothing(store: SharedStore) {
        let (alice, _) = register(&store, "alice", "alice@example.com").await;
        // Taken username, free e-mail: the e-mail must not stay claimed, no session may exist.
        let err = store
            .create_user(
                new_user("ALICE", "fresh@example.com"),
                session("lost-1", 0, "lost-r1"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        assert!(!store.email_in_use("fresh@example.com").await.unwrap());
        // Free username, taken e-mail: the username must not stay claimed.
        let err = store
            .create_user(
                new_user("newbie", "Alice@example.com"),
                session("lost-2", 0, "lost-r2"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EmailTaken), "{err:?}");
        assert_eq!(store.find_user_by_username("newbie").await.unwrap(), None);

        for id in alice.id + 1..alice.id + 5 {
            for sid in ["lost-1", "lost-2"] {
                let (user, s) = store.session_with_user(id, sid, NOW).await.unwrap();
                assert_eq!(user, None, "no user {id} was written");
                assert_eq!(s, None, "no session {sid} was written");
            }
        }
        // Both names are still free for real registrations.
        let (newbie, _) = register(&store, "newbie", "fresh@example.com").await;
        assert!(newbie.id > alice.id);
    }

    async fn empty_emails_never_collide(store: SharedStore) {
        let (a, _) = register(&store, "a", "").await;
        let (b, _) = register(&store, "b", "").await;
        assert_ne!(a.id, b.id);
        assert_eq!(store.get_user(b.id).await.unwrap().unwrap().email, "");
    }

    async fn cjk_usernames_work(store: SharedStore) {
        let (ming, first) = register(&store, "小明", "xiaoming@example.cn").await;
        assert_eq!(
            store.find_user_by_username("小明").await.unwrap(),
            Some(ming.clone())
        );
        assert_eq!(store.find_user_by_username("小红").await.unwrap(), None);
        let err = store
            .create_user(new_user("小明", ""), session("s2", 0, "r2"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        // Non-ASCII case folding: Ünïcode and ünïcode are one name.
        register(&store, "Ünïcode", "").await;
        let err = store
            .create_user(new_user("ünïcode", ""), session("s3", 0, "r3"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        assert_eq!(live_session(&store, &first, NOW).await, Some(first));
    }

    async fn insert_user_keeps_id_and_moves_counter_past_it(store: SharedStore) {
        let imported = full_user(1000, "imported", "imported@example.com");
        store.insert_user(imported.clone()).await.unwrap();
        assert_eq!(store.get_user(1000).await.unwrap(), Some(imported.clone()));
        assert_eq!(
            store.find_user_by_username("IMPORTED").await.unwrap(),
            Some(imported.clone())
        );
        assert!(store.email_in_use("Imported@example.com").await.unwrap());

        let (next, _) = register(&store, "next", "").await;
        assert!(
            next.id > 1000,
            "new ids come after imported ones, got {}",
            next.id
        );

        // A lower imported id does not move the counter back.
        store
            .insert_user(full_user(500, "older", ""))
            .await
            .unwrap();
        assert_eq!(
            store.get_user(500).await.unwrap().unwrap().username,
            "older"
        );
        let (after, _) = register(&store, "after", "").await;
        assert!(after.id > next.id, "{} then {}", next.id, after.id);

        // An inactive, never-logged-in, avatar-less import keeps those too.
        let plain = User {
            is_active: false,
            last_login: None,
            avatar: None,
            ..full_user(2000, "plain", "")
        };
        store.insert_user(plain.clone()).await.unwrap();
        assert_eq!(store.get_user(2000).await.unwrap(), Some(plain));
    }

    async fn insert_user_refuses_taken_id_username_and_email(store: SharedStore) {
        store
            .insert_user(full_user(7, "seven", "seven@example.com"))
            .await
            .unwrap();
        let err = store
            .insert_user(full_user(7, "other", "other@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UsernameTaken),
            "existing id: {err:?}"
        );
        let err = store
            .insert_user(full_user(8, "SEVEN", "eight@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UsernameTaken),
            "taken username: {err:?}"
        );
        let err = store
            .insert_user(full_user(9, "nine", "Seven@Example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::EmailTaken),
            "taken e-mail: {err:?}"
        );

        assert_eq!(store.get_user(7).await.unwrap().unwrap().username, "seven");
        assert_eq!(store.get_user(8).await.unwrap(), None);
        assert_eq!(store.get_user(9).await.unwrap(), None);
        assert!(!store.email_in_use("other@example.com").await.unwrap());
        assert!(!store.email_in_use("eight@example.com").await.unwrap());
        assert_eq!(store.find_user_by_username("other").await.unwrap(), None);
        assert_eq!(store.find_user_by_username("nine").await.unwrap(), None);
    }

    async fn missing_users_read_as_none(store: SharedStore) {
        assert_eq!(store.get_user(1).await.unwrap(), None);
        assert_eq!(store.get_user(424_242).await.unwrap(), None);
        assert_eq!(store.find_user_by_username("nobody").await.unwrap(), None);
        assert!(!store.email_in_use("nobody@example.com").await.unwrap());
    }

    async fn email_in_use_is_case_insensitive(store: SharedStore) {
        register(&store, "alice", "alice@example.com").await;
        assert!(store.email_in_use("alice@example.com").await.unwrap());
        assert!(store.email_in_use("ALICE@EXAMPLE.COM").await.unwrap());
        assert!(!store.email_in_use("alice@example.org").await.unwrap());
    }

    async fn find_active_users_by_email_is_case_insensitive(store: SharedStore) {
        let (alice, _) = register(&store, "alice", "Alice@Example.com").await;
        register(&store, "bob", "bob@example.com").await;
        for query in ["alice@example.com", "ALICE@EXAMPLE.COM", " Alice@Example.com "] {
            let found = store.find_active_users_by_email(query).await.unwrap();
            assert_eq!(found, vec![alice.clone()], "{query:?}");
        }
        assert_eq!(store.find_active_users_by_email("alice@example.org").await.unwrap(), vec![]);
        assert_eq!(store.find_active_users_by_email("").await.unwrap(), vec![], "no e-mail matches users without one");
        register(&store, "noemail", "").await;
        assert_eq!(store.find_active_users_by_email("").await.unwrap(), vec![]);
    }

    async fn find_active_users_by_email_skips_inactive_users(store: SharedStore) {
        let dormant = User { is_active: false, ..full_user(7, "dormant", "dormant@example.com") };
        store.insert_user(dormant).await.unwrap();
        assert_eq!(store.find_active_users_by_email("dormant@example.com").await.unwrap(), vec![]);
        let imported = full_user(8, "imported", "Imported@Example.com");
        store.insert_user(imported.clone()).await.unwrap();
        assert_eq!(store.find_active_users_by_email("imported@example.com").await.unwrap(), vec![imported]);
    }

    async fn update_user_changes_profile_fields(store: SharedStore) {
        let (user, _) = register(&store, "alice", "alice@example.com").await;
        let update = UserUpdate {
            first_name: Some("Alice".into()),
            last_name: Some("Liddell".into()),
            nickname: Some("爱丽丝".into()),
            signature: Some("Down the rabbit hole".into()),
            ..UserUpdate::default()
        };
        let updated = store.update_user(user.id, update).await.unwrap();
        let expected = User {
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            nickname: "爱丽丝".into(),
            signature: "Down the rabbit hole".into(),
            ..user.clone()
        };
        assert_eq!(updated, expected);
        assert_eq!(
            store.get_user(user.id).await.unwrap(),
            Some(expected.clone())
        );

        // Fields left at None stay; a field can be emptied.
        let updated = store
            .update_user(
                user.id,
                UserUpdate {
                    signature: Some(String::new()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            updated,
            User {
                signature: String::new(),
                ..expected
            }
        );
    }

    async fn update_user_username_change_frees_the_old_name(store: SharedStore) {
        let (alice, _) = register(&store, "alice", "").await;
        let renamed = store
            .update_user(
                alice.id,
                UserUpdate {
                    username: Some("小明".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            renamed,
            User {
                username: "小明".into(),
                ..alice.clone()
            }
        );
        assert_eq!(
            store.find_user_by_username("小明").await.unwrap(),
            Some(renamed.clone())
        );
        assert_eq!(store.find_user_by_username("alice").await.unwrap(), None);

        // The old name is free for someone else, the new one is not.
        let (other, _) = register(&store, "Alice", "").await;
        assert_ne!(other.id, alice.id);
        assert_eq!(
            store.find_user_by_username("alice").await.unwrap(),
            Some(other.clone())
        );
        let err = store
            .create_user(new_user("小明", ""), session("s9", 0, "r9"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");

        // Renaming back and forth keeps exactly one claim per user.
        let back = store
            .update_user(
                alice.id,
                UserUpdate {
                    username: Some("alice2".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(back.username, "alice2");
        assert_eq!(store.find_user_by_username("小明").await.unwrap(), None);
        register(&store, "小明", "").await;
    }

    async fn update_user_to_a_taken_username_writes_nothing(store: SharedStore) {
        let (alice, _) = register(&store, "alice", "").await;
        let (bob, _) = register(&store, "bob", "").await;
        let err = store
            .update_user(
                bob.id,
                UserUpdate {
                    username: Some("ALICE".into()),
                    nickname: Some("not saved".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob.clone()));
        assert_eq!(store.get_user(alice.id).await.unwrap(), Some(alice.clone()));
        assert_eq!(store.find_user_by_username("bob").await.unwrap(), Some(bob));
        assert_eq!(
            store.find_user_by_username("alice").await.unwrap(),
            Some(alice)
        );
    }

    async fn update_user_case_only_rename(store: SharedStore) {
        let (user, _) = register(&store, "bob", "").await;
        let renamed = store
            .update_user(
                user.id,
                UserUpdate {
                    username: Some("Bob".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(renamed.username, "Bob");
        assert_eq!(
            store.find_user_by_username("bob").await.unwrap(),
            Some(renamed.clone())
        );
        assert_eq!(
            store.find_user_by_username("BOB").await.unwrap(),
            Some(renamed.clone())
        );
        // Setting the same name again is no conflict with oneself.
        let same = store
            .update_user(
                user.id,
                UserUpdate {
                    username: Some("Bob".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(same, renamed);
        let err = store
            .create_user(new_user("BOB", ""), session("s2", 0, "r2"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    }

    async fn update_user_sets_and_clears_avatar(store: SharedStore) {
        let (user, _) = register(&store, "alice", "").await;
        let key = format!("avatar/{}/a.png", user.id);
        let with = store
            .update_user(
                user.id,
                UserUpdate {
                    avatar: Some(Some(key.clone())),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(with.avatar, Some(key.clone()));
        assert_eq!(
            store.get_user(user.id).await.unwrap().unwrap().avatar,
            Some(key)
        );

        // Leaving it alone keeps it.
        let kept = store
            .update_user(
                user.id,
                UserUpdate {
                    nickname: Some("al".into()),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(kept.avatar.is_some());

        let without = store
            .update_user(
                user.id,
                UserUpdate {
                    avatar: Some(None),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(without.avatar, None);
        assert_eq!(without.nickname, "al");
        assert_eq!(store.get_user(user.id).await.unwrap(), Some(without));
    }

    async fn update_user_missing_user_is_user_not_found(store: SharedStore) {
        register(&store, "alice", "").await;
        for update in [
            UserUpdate {
                nickname: Some("x".into()),
                ..UserUpdate::default()
            },
            UserUpdate {
                username: Some("ghost".into()),
                ..UserUpdate::default()
            },
            UserUpdate {
                avatar: Some(None),
                ..UserUpdate::default()
            },
        ] {
            let err = store.update_user(424_242, update).await.unwrap_err();
            assert!(matches!(err, StoreError::UserNotFound), "{err:?}");
        }
        assert_eq!(store.get_user(424_242).await.unwrap(), None);
        assert_eq!(store.find_user_by_username("ghost").await.unwrap(), None);
    }

    async fn update_user_empty_update_returns_the_user(store: SharedStore) {
        let (user, _) = register(&store, "alice", "").await;
        assert_eq!(
            store
                .update_user(user.id, UserUpdate::default())
                .await
                .unwrap(),
            user
        );
    }

    async fn replace_password_hash_is_compare_and_set(store: SharedStore) {
        let (user, _) = register(&store, "alice", "").await;
        // From a hash that is not the stored one: nothing changes.
        let err = store.replace_password_hash(new_password(&user, "$argon2id$other", "$argon2id$new", None)).await.unwrap_err();
        assert!(matches!(err, StoreError::Stale), "{err:?}");
        assert_eq!(store.get_user(user.id).await.unwrap().unwrap(), user);
        // From the stored one: the hash and the version change together.
        assert_eq!(store.replace_password_hash(new_password(&user, HASH, "$argon2id$new", None)).await.unwrap(), 1);
        let read = store.get_user(user.id).await.unwrap().unwrap();
        assert_eq!(read, User { password_hash: "$argon2id$new".into(), password_version: 1, ..user.clone() });
        // A rehash of the same password keeps the version.
        let rehash = PasswordReplacement { new_version: false, ..new_password(&user, "$argon2id$new", "$argon2id$rehashed", None) };
        assert_eq!(store.replace_password_hash(rehash).await.unwrap(), 1);
        assert_eq!(store.get_user(user.id).await.unwrap().unwrap().password_hash, "$argon2id$rehashed");
        let err = store
            .replace_password_hash(PasswordReplacement { user_id: 424_242, ..new_password(&user, HASH, "$argon2id$x", None) })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UserNotFound), "{err:?}");
        assert_eq!(store.get_user(424_242).await.unwrap(), None);
    }

    async fn parallel_password_replacements_from_one_hash_succeed_once(store: SharedStore) {
        let (user, _) = register(&store, "alice", "").await;
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (store, r) = (store.clone(), new_password(&user, HASH, &format!("$argon2id$new{i}"), None));
                tokio::spawn(async move { store.replace_password_hash(r).await })
            })
            .collect();
        let mut won = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(version) => won.push((i, version)),
                Err(StoreError::Stale) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one replacement wins: {won:?}");
        let read = store.get_user(user.id).await.unwrap().unwrap();
        assert_eq!((read.password_hash, read.password_version), (format!("$argon2id$new{}", won[0].0), 1));
    }

    async fn a_new_password_ends_the_sessions_of_the_old_one_but_the_kept_one(store: SharedStore) {
        let (user, first) = register(&store, "alice", "").await;
        let second = session("alice-s2", user.id, "alice-s2-r1");
        store.start_session(second.clone(), NOW).await.unwrap();
        store.replace_password_hash(new_password(&user, HASH, "$argon2id$new", Some(&first.id))).await.unwrap();
        let (now_user, kept) = store.session_with_user(user.id, &first.id, NOW + 1).await.unwrap();
        let now_user = now_user.unwrap();
        assert_eq!(now_user.password_version, 1);
        assert!(kept.unwrap().is_valid_for(&now_user, NOW + 1), "the kept session follows the new version");
        let (_, other) = store.session_with_user(user.id, &second.id, NOW + 1).await.unwrap();
        assert!(!other.unwrap().is_valid_for(&now_user, NOW + 1), "the other session is of the old password");
        // Its refresh token no longer rotates; the kept one rotates after learning its version.
        let stale = store.rotate_refresh(rotation(&second, "alice-s2-r1", "alice-s2-r2", NOW + 2)).await.unwrap();
        assert_eq!(stale, RotateOutcome::SessionEnded);
        let hinted = store.rotate_refresh(rotation(&first, "alice-r1", "alice-r2", NOW + 2)).await.unwrap();
        assert_eq!(hinted, RotateOutcome::PasswordVersion(1));
        let r = Rotation { password_version: 1, ..rotation(&first, "alice-r1", "alice-r2", NOW + 2) };
        assert_eq!(store.rotate_refresh(r).await.unwrap(), RotateOutcome::Rotated);
        // No session starts under the old version any more (a login that checked the old password).
        let late = session("alice-s3", user.id, "alice-s3-r1");
        let err = store.start_session(late.clone(), NOW + 3).await.unwrap_err();
        assert!(matches!(err, StoreError::Stale), "{err:?}");
        assert_eq!(store.session_with_user(user.id, &late.id, NOW + 3).await.unwrap().1, None);
        let current = Session { password_version: 1, ..late };
        store.start_session(current.clone(), NOW + 3).await.unwrap();
        assert!(store.session_with_user(user.id, &current.id, NOW + 3).await.unwrap().1.is_some());
    }
    async fn set_active_disables_and_enables(store: SharedStore) {
        let (user, first) = register(&store, "alice", "").await;
        store.set_active(user.id, false).await.unwrap();
        assert!(!store.get_user(user.id).await.unwrap().unwrap().is_active);
        let r = rotation(&first, "alice-r1", "alice-r2", NOW + 1);
        assert_eq!(store.rotate_refresh(r).await.unwrap(), RotateOutcome::UserInactive);
        store.set_active(user.id, true).await.unwrap();
        let back = store.get_user(user.id).await.unwrap().unwrap();
        assert_eq!(back, User { last_login: back.last_login, ..user }, "nothing else changed");
        let err = store.set_active(424_242, false).await.unwrap_err();
        assert!(matches!(err, StoreError::UserNotFound), "{err:?}");
        assert_eq!(store.get_user(424_242).await.unwrap(), None, "nothing written");
    }
});
