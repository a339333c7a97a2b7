//! The behaviour every store backend must show, one function per behaviour, each given a fresh
//! store (see `store_conformance_tests!`). The doc comments of the traits in `accounts::store`
//! are the specification.

use accounts::domain::model::{
    LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session, SpentToken, User, UserUpdate,
};
use accounts::domain::throttle::{Limit, Rule, Usage};
use accounts::store::{Admission, Reservation, SharedStore, StoreError};

/// "Now" for every test (Unix seconds): times are passed explicitly, never read from a clock.
const NOW: i64 = 1_700_000_000;
const HOUR: i64 = 3600;
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn new_user(username: &str, email: &str) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        password_hash: HASH.into(),
        date_joined: NOW - 10,
    }
}

/// A session whose `user_id` the store fills in (create) or that belongs to `user_id`.
fn session(id: &str, user_id: u64, jti: &str) -> Session {
    Session {
        id: id.into(),
        user_id,
        refresh_jti: jti.into(),
        created_at: NOW,
        expires_at: NOW + HOUR,
        password_version: 0,
    }
}

/// A user as imported from the old service, every field set.
fn full_user(id: u64, username: &str, email: &str) -> User {
    User {
        id,
        username: username.into(),
        email: email.into(),
        password_hash: "pbkdf2_sha256$260000$salt$hash=".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        nickname: "ada".into(),
        signature: "Hello, 世界".into(),
        avatar: Some(format!("avatar/{id}/face.png")),
        is_active: true,
        date_joined: NOW - 1000,
        last_login: Some(NOW - 500),
        password_version: 0,
    }
}

/// Registers a user with a first session `<username>-s1` whose refresh token is `<username>-r1`.
async fn register(store: &SharedStore, username: &str, email: &str) -> (User, Session) {
    let first = session(&format!("{username}-s1"), 0, &format!("{username}-r1"));
    let user = store
        .create_user(new_user(username, email), first.clone())
        .await
        .unwrap_or_else(|e| panic!("create_user({username:?}): {e}"));
    (
        user.clone(),
        Session {
            user_id: user.id,
            ..first
        },
    )
}

fn rotation(s: &Session, old_jti: &str, new_jti: &str, now: i64) -> Rotation {
    Rotation {
        user_id: s.user_id,
        session_id: s.id.clone(),
        old_jti: old_jti.into(),
        old_exp: s.expires_at,
        new_jti: new_jti.into(),
        new_exp: now + 2 * HOUR,
        password_version: 0,
        now,
    }
}

fn spent(s: &Session, jti: &str, exp: i64) -> SpentToken {
    SpentToken {
        jti: jti.into(),
        exp,
        user_id: s.user_id,
        session_id: s.id.clone(),
    }
}

async fn live_session(store: &SharedStore, s: &Session, now: i64) -> Option<Session> {
    store
        .session_with_user(s.user_id, &s.id, now)
        .await
        .unwrap()
        .1
}

// ----- users ---------------------------------------------------------------------------------

pub async fn create_user_allocates_increasing_ids(store: SharedStore) {
    let (a, _) = register(&store, "alice", "alice@example.com").await;
    let (b, _) = register(&store, "bob", "").await;
    let (c, _) = register(&store, "carol", "carol@example.com").await;
    assert!(a.id > 0);
    assert!(a.id < b.id && b.id < c.id, "ids {} {} {}", a.id, b.id, c.id);
}

pub async fn create_user_writes_user_and_first_session(store: SharedStore) {
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

pub async fn username_is_unique_case_insensitively(store: SharedStore) {
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

pub async fn email_is_unique_case_insensitively(store: SharedStore) {
    register(&store, "alice", "alice@example.com").await;
    let err = store
        .create_user(new_user("bob", "ALICE@Example.COM"), session("s2", 0, "r2"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmailTaken), "{err:?}");
    assert!(store.email_in_use("Alice@Example.com").await.unwrap());
    assert_eq!(store.find_user_by_username("bob").await.unwrap(), None);
}

pub async fn username_taken_wins_over_email_taken(store: SharedStore) {
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

pub async fn failed_create_writes_nothing(store: SharedStore) {
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

pub async fn empty_emails_never_collide(store: SharedStore) {
    let (a, _) = register(&store, "a", "").await;
    let (b, _) = register(&store, "b", "").await;
    assert_ne!(a.id, b.id);
    assert_eq!(store.get_user(b.id).await.unwrap().unwrap().email, "");
}

pub async fn cjk_usernames_work(store: SharedStore) {
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

pub async fn insert_user_keeps_id_and_moves_counter_past_it(store: SharedStore) {
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

pub async fn insert_user_refuses_taken_id_username_and_email(store: SharedStore) {
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

pub async fn missing_users_read_as_none(store: SharedStore) {
    assert_eq!(store.get_user(1).await.unwrap(), None);
    assert_eq!(store.get_user(424_242).await.unwrap(), None);
    assert_eq!(store.find_user_by_username("nobody").await.unwrap(), None);
    assert!(!store.email_in_use("nobody@example.com").await.unwrap());
}

pub async fn email_in_use_is_case_insensitive(store: SharedStore) {
    register(&store, "alice", "alice@example.com").await;
    assert!(store.email_in_use("alice@example.com").await.unwrap());
    assert!(store.email_in_use("ALICE@EXAMPLE.COM").await.unwrap());
    assert!(!store.email_in_use("alice@example.org").await.unwrap());
}

pub async fn find_active_users_by_email_is_case_insensitive(store: SharedStore) {
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

pub async fn find_active_users_by_email_skips_inactive_users(store: SharedStore) {
    let dormant = User { is_active: false, ..full_user(7, "dormant", "dormant@example.com") };
    store.insert_user(dormant).await.unwrap();
    assert_eq!(store.find_active_users_by_email("dormant@example.com").await.unwrap(), vec![]);
    let imported = full_user(8, "imported", "Imported@Example.com");
    store.insert_user(imported.clone()).await.unwrap();
    assert_eq!(store.find_active_users_by_email("imported@example.com").await.unwrap(), vec![imported]);
}

// ----- update_user, set_password_hash ------------------------------------------------------

pub async fn update_user_changes_profile_fields(store: SharedStore) {
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

pub async fn update_user_username_change_frees_the_old_name(store: SharedStore) {
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

pub async fn update_user_to_a_taken_username_writes_nothing(store: SharedStore) {
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

pub async fn update_user_case_only_rename(store: SharedStore) {
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

pub async fn update_user_sets_and_clears_avatar(store: SharedStore) {
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

pub async fn update_user_missing_user_is_user_not_found(store: SharedStore) {
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

pub async fn update_user_empty_update_returns_the_user(store: SharedStore) {
    let (user, _) = register(&store, "alice", "").await;
    assert_eq!(
        store
            .update_user(user.id, UserUpdate::default())
            .await
            .unwrap(),
        user
    );
}

fn new_password(user: &User, expected: &str, new: &str, keep: Option<&str>) -> PasswordReplacement {
    PasswordReplacement {
        user_id: user.id,
        expected_hash: expected.into(),
        new_hash: new.into(),
        new_version: true,
        keep_session: keep.map(str::to_string),
    }
}

pub async fn replace_password_hash_is_compare_and_set(store: SharedStore) {
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

pub async fn parallel_password_replacements_from_one_hash_succeed_once(store: SharedStore) {
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

pub async fn a_new_password_ends_the_sessions_of_the_old_one_but_the_kept_one(store: SharedStore) {
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

// ----- sessions ------------------------------------------------------------------------------

pub async fn start_session_records_last_login(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let second = session("second", user.id, "r-second");
    store.start_session(second.clone(), NOW + 5).await.unwrap();
    let (u, s) = store
        .session_with_user(user.id, "second", NOW + 6)
        .await
        .unwrap();
    assert_eq!(u.unwrap().last_login, Some(NOW + 5));
    assert_eq!(s, Some(second));
    // The first session is untouched.
    assert_eq!(live_session(&store, &first, NOW + 6).await, Some(first));
}

pub async fn start_session_for_missing_user_writes_nothing(store: SharedStore) {
    let err = store
        .start_session(session("orphan", 424_242, "r"), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UserNotFound), "{err:?}");
    assert_eq!(
        store
            .session_with_user(424_242, "orphan", NOW)
            .await
            .unwrap(),
        (None, None)
    );
    assert_eq!(store.get_user(424_242).await.unwrap(), None);
}

pub async fn session_with_user_reads_both(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let (u, s) = store
        .session_with_user(user.id, &first.id, NOW)
        .await
        .unwrap();
    assert_eq!(u, Some(user));
    assert_eq!(s, Some(first));
}

pub async fn session_with_user_missing_parts_read_as_none(store: SharedStore) {
    let (user, _) = register(&store, "alice", "").await;
    let (u, s) = store
        .session_with_user(user.id, "no-such-session", NOW)
        .await
        .unwrap();
    assert_eq!(u, Some(user));
    assert_eq!(s, None);
    assert_eq!(
        store
            .session_with_user(424_242, "no-such-session", NOW)
            .await
            .unwrap(),
        (None, None)
    );
}

pub async fn session_with_user_expired_session_reads_as_none(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let end = first.expires_at;
    assert!(live_session(&store, &first, end - 1).await.is_some());
    let (u, s) = store
        .session_with_user(user.id, &first.id, end)
        .await
        .unwrap();
    assert_eq!(u, Some(user.clone()), "the user is still read");
    assert_eq!(s, None, "a session is over at its expires_at");
    assert_eq!(live_session(&store, &first, end + HOUR).await, None);
}

pub async fn session_with_user_other_users_session_reads_as_none(store: SharedStore) {
    let (_, alices) = register(&store, "alice", "").await;
    let (bob, _) = register(&store, "bob", "").await;
    let (u, s) = store
        .session_with_user(bob.id, &alices.id, NOW)
        .await
        .unwrap();
    assert_eq!(u, Some(bob));
    assert_eq!(s, None);
    let (u, s) = store
        .session_with_user(424_242, &alices.id, NOW)
        .await
        .unwrap();
    assert_eq!((u, s), (None, None));
}

// ----- rotate_refresh ------------------------------------------------------------------------

pub async fn rotate_refresh_happy_path(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let r = rotation(&first, "alice-r1", "alice-r2", NOW + 60);
    assert_eq!(
        store.rotate_refresh(r.clone()).await.unwrap(),
        RotateOutcome::Rotated
    );

    let s = live_session(&store, &first, NOW + 61)
        .await
        .expect("session still live");
    assert_eq!(s.refresh_jti, "alice-r2");
    assert_eq!(s.expires_at, r.new_exp);
    assert_eq!(
        (s.id.as_str(), s.user_id, s.created_at),
        (first.id.as_str(), user.id, first.created_at)
    );

    let entry = store
        .blacklisted("alice-r1", NOW + 61)
        .await
        .unwrap()
        .expect("old jti blacklisted");
    assert_eq!(entry.jti, "alice-r1");
    assert_eq!(entry.user_id, user.id);
    assert_eq!(entry.session_id, first.id);
    assert_eq!(entry.expires_at, first.expires_at);
    assert_eq!(entry.blacklisted_at, NOW + 60);
    assert_eq!(store.blacklisted("alice-r2", NOW + 61).await.unwrap(), None);

    // The new token rotates in turn, and the session outlives the first token's exp.
    let later = first.expires_at + 60;
    let r2 = Rotation {
        old_exp: r.new_exp,
        ..rotation(&first, "alice-r2", "alice-r3", later)
    };
    assert_eq!(
        store.rotate_refresh(r2).await.unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        live_session(&store, &first, later)
            .await
            .unwrap()
            .refresh_jti,
        "alice-r3"
    );
}

pub async fn rotate_refresh_replay_is_blacklisted(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    let r = rotation(&first, "alice-r1", "alice-r2", NOW);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::Rotated
    );
    let replay = rotation(&first, "alice-r1", "alice-r3", NOW + 1);
    assert_eq!(
        store.rotate_refresh(replay).await.unwrap(),
        RotateOutcome::Blacklisted
    );
    // The replay changed nothing.
    assert_eq!(
        live_session(&store, &first, NOW + 2)
            .await
            .unwrap()
            .refresh_jti,
        "alice-r2"
    );
    assert_eq!(store.blacklisted("alice-r3", NOW + 2).await.unwrap(), None);
}

pub async fn rotate_refresh_wrong_jti_is_session_ended(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    let r = rotation(&first, "not-the-current-jti", "alice-r2", NOW);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::SessionEnded
    );
    assert_eq!(
        live_session(&store, &first, NOW).await.unwrap().refresh_jti,
        "alice-r1"
    );
    // A refused rotation spends nothing.
    assert_eq!(
        store.blacklisted("not-the-current-jti", NOW).await.unwrap(),
        None
    );
    let missing = Rotation {
        session_id: "no-such-session".into(),
        ..rotation(&first, "x", "y", NOW)
    };
    assert_eq!(
        store.rotate_refresh(missing).await.unwrap(),
        RotateOutcome::SessionEnded
    );
}

pub async fn rotate_refresh_expired_or_foreign_session_is_session_ended(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    let (bob, _) = register(&store, "bob", "").await;
    let expired = rotation(&first, "alice-r1", "alice-r2", first.expires_at);
    assert_eq!(
        store.rotate_refresh(expired).await.unwrap(),
        RotateOutcome::SessionEnded
    );
    assert_eq!(store.blacklisted("alice-r1", NOW).await.unwrap(), None);
    // Bob cannot rotate Alice's session, even with its current jti.
    let foreign = Rotation {
        user_id: bob.id,
        ..rotation(&first, "alice-r1", "bob-r2", NOW)
    };
    assert_eq!(
        store.rotate_refresh(foreign).await.unwrap(),
        RotateOutcome::SessionEnded
    );
    assert_eq!(
        live_session(&store, &first, NOW).await.unwrap().refresh_jti,
        "alice-r1"
    );
}

pub async fn rotate_refresh_inactive_user(store: SharedStore) {
    let inactive = User {
        is_active: false,
        ..full_user(50, "sleeper", "")
    };
    store.insert_user(inactive).await.unwrap();
    let s = session("sleeper-s", 50, "sleeper-r1");
    store.start_session(s.clone(), NOW).await.unwrap();
    let r = rotation(&s, "sleeper-r1", "sleeper-r2", NOW + 1);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::UserInactive
    );
    assert_eq!(
        live_session(&store, &s, NOW + 1).await.unwrap().refresh_jti,
        "sleeper-r1"
    );
    assert_eq!(
        store.blacklisted("sleeper-r1", NOW + 1).await.unwrap(),
        None
    );
}

pub async fn rotate_refresh_missing_user(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    // A token of a user that is gone, for a session that is gone.
    let gone = Session {
        user_id: 424_242,
        id: "gone".into(),
        ..first.clone()
    };
    let r = rotation(&gone, "gone-r1", "gone-r2", NOW);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::UserMissing
    );
    // A missing user is reported before the session is looked at.
    let r = Rotation {
        user_id: 424_242,
        ..rotation(&first, "alice-r1", "alice-r2", NOW)
    };
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::UserMissing
    );
    assert_eq!(
        live_session(&store, &first, NOW).await.unwrap().refresh_jti,
        "alice-r1"
    );
    assert_eq!(store.blacklisted("alice-r1", NOW).await.unwrap(), None);
}

pub async fn rotate_refresh_checks_blacklist_first(store: SharedStore) {
    // A blacklisted token is reported as such even when the user is also inactive.
    let inactive = User {
        is_active: false,
        ..full_user(60, "sleeper", "")
    };
    store.insert_user(inactive).await.unwrap();
    let s = session("sleeper-s", 60, "sleeper-r1");
    store.start_session(s.clone(), NOW).await.unwrap();
    let old = spent(&s, "sleeper-r0", NOW + HOUR);
    assert_eq!(
        store.logout(old, NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    let r = rotation(&s, "sleeper-r0", "sleeper-r2", NOW + 1);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::Blacklisted
    );
    // ... and when the user is missing.
    let ghost = SpentToken {
        user_id: 424_242,
        ..spent(&s, "ghost-r0", NOW + HOUR)
    };
    assert_eq!(
        store.logout(ghost, NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    let r = Rotation {
        user_id: 424_242,
        ..rotation(&s, "ghost-r0", "ghost-r1", NOW + 1)
    };
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::Blacklisted
    );
}

pub async fn rotate_refresh_ignores_expired_blacklist_entries(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    // r1 -> r2 blacklists r1 until the first token's exp ...
    let r1_exp = first.expires_at;
    assert_eq!(
        store
            .rotate_refresh(rotation(&first, "alice-r1", "alice-r2", NOW))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    // ... r2 -> r1 (a jti reused, as only a test would) makes r1 current again, long-lived ...
    let back = Rotation {
        new_exp: NOW + 100 * HOUR,
        ..rotation(&first, "alice-r2", "alice-r1", NOW + 1)
    };
    assert_eq!(
        store.rotate_refresh(back).await.unwrap(),
        RotateOutcome::Rotated
    );
    // ... while its blacklist entry is live, r1 cannot be used ...
    let early = Rotation {
        old_exp: NOW + 100 * HOUR,
        ..rotation(&first, "alice-r1", "alice-r3", NOW + 2)
    };
    assert_eq!(
        store.rotate_refresh(early).await.unwrap(),
        RotateOutcome::Blacklisted
    );
    // ... once the entry is past its exp it no longer blocks (even if still stored).
    let late_now = r1_exp + 10;
    assert_eq!(store.blacklisted("alice-r1", late_now).await.unwrap(), None);
    let late = Rotation {
        old_exp: NOW + 100 * HOUR,
        ..rotation(&first, "alice-r1", "alice-r3", late_now)
    };
    assert_eq!(
        store.rotate_refresh(late).await.unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        live_session(&store, &first, late_now)
            .await
            .unwrap()
            .refresh_jti,
        "alice-r3"
    );
    // The new entry for r1 is live again, with the new exp.
    let entry = store
        .blacklisted("alice-r1", late_now)
        .await
        .unwrap()
        .expect("r1 spent again");
    assert_eq!(entry.expires_at, NOW + 100 * HOUR);
    assert_eq!(entry.blacklisted_at, late_now);
}

pub async fn concurrent_rotations_of_one_token_rotate_once(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    let mut handles = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let r = rotation(&first, "alice-r1", &format!("alice-new-{i}"), NOW + 1);
        handles.push(tokio::spawn(
            async move { (i, store.rotate_refresh(r).await) },
        ));
    }
    let mut winners = Vec::new();
    for handle in handles {
        let (i, outcome) = handle.await.expect("task panicked");
        match outcome.unwrap_or_else(|e| panic!("rotation {i}: {e}")) {
            RotateOutcome::Rotated => winners.push(i),
            RotateOutcome::Blacklisted => {}
            other => panic!("rotation {i}: {other:?}, expected Rotated or Blacklisted"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one rotation wins, got {winners:?}"
    );
    let s = live_session(&store, &first, NOW + 2).await.unwrap();
    assert_eq!(s.refresh_jti, format!("alice-new-{}", winners[0]));
}

// ----- logout --------------------------------------------------------------------------------

pub async fn logout_ends_session_then_already_blacklisted(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let token = spent(&first, "alice-r1", first.expires_at);
    assert_eq!(
        store.logout(token.clone(), NOW + 5).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert_eq!(live_session(&store, &first, NOW + 6).await, None);
    let entry = store
        .blacklisted("alice-r1", NOW + 6)
        .await
        .unwrap()
        .expect("blacklisted");
    assert_eq!(entry.user_id, user.id);
    assert_eq!(entry.session_id, first.id);
    assert_eq!(entry.expires_at, first.expires_at);
    assert_eq!(entry.blacklisted_at, NOW + 5);

    assert_eq!(
        store.logout(token, NOW + 7).await.unwrap(),
        LogoutOutcome::AlreadyBlacklisted
    );
    // The user is untouched, and a rotation with the logged-out token is refused.
    assert_eq!(store.get_user(user.id).await.unwrap(), Some(user));
    let r = rotation(&first, "alice-r1", "alice-r2", NOW + 8);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::Blacklisted
    );
}

pub async fn logout_with_non_current_token_still_blacklists(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    assert_eq!(
        store
            .rotate_refresh(rotation(&first, "alice-r1", "alice-r2", NOW))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    // r1 is spent already.
    let r1 = spent(&first, "alice-r1", first.expires_at);
    assert_eq!(
        store.logout(r1, NOW + 1).await.unwrap(),
        LogoutOutcome::AlreadyBlacklisted
    );
    assert!(live_session(&store, &first, NOW + 1).await.is_some());
    // A token that is neither current nor spent: blacklisted, the session stays.
    let stray = spent(&first, "alice-stray", NOW + HOUR);
    assert_eq!(
        store.logout(stray.clone(), NOW + 2).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert!(store
        .blacklisted("alice-stray", NOW + 3)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        live_session(&store, &first, NOW + 3)
            .await
            .unwrap()
            .refresh_jti,
        "alice-r2"
    );
    assert_eq!(
        store.logout(stray, NOW + 4).await.unwrap(),
        LogoutOutcome::AlreadyBlacklisted
    );
    // The current token still logs the session out.
    let r2 = spent(&first, "alice-r2", NOW + 2 * HOUR);
    assert_eq!(
        store.logout(r2, NOW + 5).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert_eq!(live_session(&store, &first, NOW + 5).await, None);
}

pub async fn logout_without_session_still_blacklists(store: SharedStore) {
    let (user, _) = register(&store, "alice", "").await;
    let token = SpentToken {
        jti: "orphan-r".into(),
        exp: NOW + HOUR,
        user_id: user.id,
        session_id: "gone".into(),
    };
    assert_eq!(
        store.logout(token.clone(), NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert!(store.blacklisted("orphan-r", NOW).await.unwrap().is_some());
    assert_eq!(
        store.logout(token, NOW).await.unwrap(),
        LogoutOutcome::AlreadyBlacklisted
    );
}

pub async fn logout_after_blacklist_entry_expired(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    let stray = spent(&first, "alice-stray", NOW + 10);
    assert_eq!(
        store.logout(stray.clone(), NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    // Past its exp the entry is gone as far as anyone can tell: a later logout records it anew.
    let later = NOW + 20;
    assert_eq!(store.blacklisted("alice-stray", later).await.unwrap(), None);
    let renewed = SpentToken {
        exp: later + HOUR,
        ..stray
    };
    assert_eq!(
        store.logout(renewed, later).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    let entry = store
        .blacklisted("alice-stray", later)
        .await
        .unwrap()
        .expect("blacklisted again");
    assert_eq!(
        (entry.expires_at, entry.blacklisted_at),
        (later + HOUR, later)
    );
}

// ----- end_session(s) -----------------------------------------------------------------------

pub async fn end_session_ends_only_that_session(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let second = session("alice-s2", user.id, "alice-s2-r1");
    store.start_session(second.clone(), NOW).await.unwrap();
    assert!(store.end_session(&first.id).await.unwrap());
    assert_eq!(live_session(&store, &first, NOW).await, None);
    assert_eq!(live_session(&store, &second, NOW).await, Some(second.clone()));
    // Ending it again (or a session that never was) reports false.
    assert!(!store.end_session(&first.id).await.unwrap());
    assert!(!store.end_session("no-such-session").await.unwrap());
    // Its refresh token no longer rotates.
    let r = rotation(&first, &first.refresh_jti, "alice-r2", NOW + 1);
    assert_eq!(store.rotate_refresh(r).await.unwrap(), RotateOutcome::SessionEnded);
}


pub async fn end_sessions_keeps_the_kept_one(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let (bob, bobs) = register(&store, "bob", "").await;
    let second = session("alice-s2", user.id, "alice-s2-r1");
    let third = session("alice-s3", user.id, "alice-s3-r1");
    store.start_session(second.clone(), NOW).await.unwrap();
    store.start_session(third.clone(), NOW).await.unwrap();

    assert_eq!(
        store.end_sessions(user.id, Some("alice-s2")).await.unwrap(),
        2
    );
    assert_eq!(live_session(&store, &first, NOW).await, None);
    assert_eq!(live_session(&store, &third, NOW).await, None);
    assert_eq!(
        live_session(&store, &second, NOW).await,
        Some(second.clone())
    );
    // Other users' sessions are untouched.
    assert_eq!(live_session(&store, &bobs, NOW).await, Some(bobs.clone()));
    assert_eq!(bobs.user_id, bob.id);
    // Nothing else to end.
    assert_eq!(
        store.end_sessions(user.id, Some("alice-s2")).await.unwrap(),
        0
    );
    // The kept session still rotates.
    let r = rotation(&second, "alice-s2-r1", "alice-s2-r2", NOW + 1);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::Rotated
    );
}

pub async fn end_sessions_ends_all_without_keep(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let second = session("alice-s2", user.id, "alice-s2-r1");
    store.start_session(second.clone(), NOW).await.unwrap();
    assert_eq!(store.end_sessions(user.id, None).await.unwrap(), 2);
    assert_eq!(live_session(&store, &first, NOW).await, None);
    assert_eq!(live_session(&store, &second, NOW).await, None);
    assert_eq!(store.end_sessions(user.id, None).await.unwrap(), 0);
    assert_eq!(store.end_sessions(424_242, None).await.unwrap(), 0);
    // An ended session cannot rotate.
    let r = rotation(&first, "alice-r1", "alice-r2", NOW + 1);
    assert_eq!(
        store.rotate_refresh(r).await.unwrap(),
        RotateOutcome::SessionEnded
    );
}

// ----- blacklist -----------------------------------------------------------------------------

pub async fn blacklisted_ignores_expired_entries(store: SharedStore) {
    let (_, first) = register(&store, "alice", "").await;
    assert_eq!(store.blacklisted("never-seen", NOW).await.unwrap(), None);
    let token = spent(&first, "alice-r1", NOW + 100);
    assert_eq!(
        store.logout(token, NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert!(store
        .blacklisted("alice-r1", NOW + 99)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.blacklisted("alice-r1", NOW + 100).await.unwrap(),
        None,
        "over at its exp"
    );
    assert_eq!(
        store
            .blacklisted("alice-r1", NOW + 10 * HOUR)
            .await
            .unwrap(),
        None
    );
}

pub async fn purge_expired_never_removes_live_rows(store: SharedStore) {
    let (user, first) = register(&store, "alice", "").await;
    let short = Session {
        expires_at: NOW + 10,
        ..session("alice-short", user.id, "short-r1")
    };
    store.start_session(short.clone(), NOW).await.unwrap();
    let live_token = spent(&first, "alice-stray", NOW + HOUR);
    let dead_token = spent(&first, "alice-dead", NOW + 10);
    assert_eq!(
        store.logout(live_token, NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );
    assert_eq!(
        store.logout(dead_token, NOW).await.unwrap(),
        LogoutOutcome::LoggedOut
    );

    let at = NOW + 20;
    let purged = store.purge_expired(at).await.unwrap();
    assert!(
        purged <= 2,
        "only the expired session and entry may go, {purged} went"
    );

    assert_eq!(live_session(&store, &first, at).await, Some(first.clone()));
    assert!(store
        .blacklisted("alice-stray", at)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.get_user(user.id).await.unwrap().map(|u| u.id),
        Some(user.id)
    );
    assert_eq!(live_session(&store, &short, at).await, None);
    assert_eq!(store.blacklisted("alice-dead", at).await.unwrap(), None);
    // Purging again changes nothing that is live.
    store.purge_expired(at).await.unwrap();
    assert_eq!(live_session(&store, &first, at).await, Some(first));
}

// ----- throttle counters --------------------------------------------------------------------

fn rule(name: &str, count: u64, window: u64) -> Rule {
    Rule { name: name.into(), limit: Limit::new(count, window) }
}

async fn admitted(store: &SharedStore, rules: &[Rule], now: i64) -> Option<Reservation> {
    match store.reserve(rules, None, now).await.unwrap() {
        Admission::Admitted(r) => Some(r),
        Admission::Refused { retry_after } => {
            assert!(retry_after >= 1);
            None
        }
    }
}

pub async fn reserve_admits_up_to_the_limit_per_window(store: SharedStore) {
    let ip = rule("login-fail:ip:192.0.2.1", 3, 60);
    let start = NOW - NOW.rem_euclid(60);
    for _ in 0..3 {
        assert!(admitted(&store, std::slice::from_ref(&ip), start + 5).await.is_some());
    }
    assert!(admitted(&store, std::slice::from_ref(&ip), start + 6).await.is_none());
    // Another counter is separate.
    assert!(admitted(&store, &[rule("login-fail:ip:192.0.2.2", 3, 60)], start + 6).await.is_some());
    // The previous window still weighs at the start of the next one, less as it slides out.
    assert!(admitted(&store, std::slice::from_ref(&ip), start + 60).await.is_none());
    assert!(admitted(&store, std::slice::from_ref(&ip), start + 60 + 21).await.is_some());
    // Two windows on, nothing of it is left.
    for _ in 0..3 {
        assert!(admitted(&store, std::slice::from_ref(&ip), start + 180).await.is_some());
    }
}

pub async fn reserve_is_all_or_nothing(store: SharedStore) {
    let (account, ip) = (rule("login-fail:account:alice", 5, 300), rule("login-fail:ip:unknown", 1, 60));
    assert!(admitted(&store, &[account.clone(), ip.clone()], NOW).await.is_some());
    // The IP is full: the account's counter does not move either.
    assert!(admitted(&store, &[account.clone(), ip.clone()], NOW).await.is_none());
    let (_, usages) = store.login_lookup("alice", &[account, ip], NOW).await.unwrap();
    assert_eq!(usages.iter().map(|u| u.current).collect::<Vec<_>>(), vec![1, 1]);
}

pub async fn parallel_reservations_admit_exactly_the_limit(store: SharedStore) {
    let rules = vec![rule("login-fail:account:alice", 5, 300), rule("login-fail:ip:unknown", 100, 60)];
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (store, rules) = (store.clone(), rules.clone());
            tokio::spawn(async move { matches!(store.reserve(&rules, None, NOW).await.unwrap(), Admission::Admitted(_)) })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 5, "of 30 parallel attempts, exactly the limit get a place");
}

pub async fn release_gives_the_places_back(store: SharedStore) {
    let rules = vec![rule("login-fail:account:alice", 1, 300), rule("login-fail:ip:unknown", 1, 60)];
    for _ in 0..3 {
        let reservation = admitted(&store, &rules, NOW).await.expect("a place, given back each time");
        store.release(&reservation).await.unwrap();
    }
    let kept = admitted(&store, &rules, NOW).await.unwrap();
    assert!(admitted(&store, &rules, NOW).await.is_none());
    store.release(&kept).await.unwrap();
    // Releasing twice never goes below zero.
    store.release(&kept).await.unwrap();
    let (_, usages) = store.login_lookup("alice", &rules, NOW).await.unwrap();
    assert_eq!(usages, vec![Usage::default(), Usage::default()]);
}

pub async fn login_lookup_reads_user_and_usage(store: SharedStore) {
    let (user, _) = register(&store, "Alice", "").await;
    let account = rule("login-fail:account:alice", 5, 300);
    let ip = rule("login-fail:ip:unknown", 10, 60);
    admitted(&store, std::slice::from_ref(&account), NOW).await.unwrap();
    admitted(&store, std::slice::from_ref(&account), NOW).await.unwrap();
    let (found, usages) = store.login_lookup("ALICE", &[account.clone(), ip.clone()], NOW).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert_eq!(usages, vec![Usage { previous: 0, current: 2 }, Usage::default()]);
    // In the next window the counts are the previous window's; two windows on, gone.
    let next = NOW - NOW.rem_euclid(300) + 300;
    let (nobody, usages) = store.login_lookup("nobody", std::slice::from_ref(&account), next).await.unwrap();
    assert!(nobody.is_none());
    assert_eq!(usages, vec![Usage { previous: 2, current: 0 }]);
    let (_, usages) = store.login_lookup("nobody", &[account], next + 300).await.unwrap();
    assert_eq!(usages, vec![Usage::default()]);
}

pub async fn look_alike_usernames_are_taken(store: SharedStore) {
    let (paypal, _) = register(&store, "paypal", "").await;
    // Cyrillic а (U+0430) in place of the Latin a.
    let err = store
        .create_user(new_user("p\u{0430}ypal", ""), session("fake-s1", 0, "fake-r1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    let (other, _) = register(&store, "bob", "").await;
    let err = store
        .update_user(other.id, UserUpdate { username: Some("P\u{0430}YPAL".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(store.get_user(other.id).await.unwrap().unwrap().username, "bob");
    // The owner may take a look-alike of its own name; the old one is free afterwards.
    let renamed = store
        .update_user(paypal.id, UserUpdate { username: Some("p\u{0430}ypal".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(renamed.username, "p\u{0430}ypal");
    let renamed = store
        .update_user(paypal.id, UserUpdate { username: Some("paypal-official".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(renamed.username, "paypal-official");
    register(&store, "PayPal", "").await;
}
