//! `SessionStore`: sessions, refresh rotation, logout, ending sessions.

use super::backends;
use super::fixtures::*;

conformance!([sqlite, dynamodb] {
    async fn start_session_records_last_login(store: SharedStore) {
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

    async fn start_session_for_missing_user_writes_nothing(store: SharedStore) {
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

    async fn session_with_user_reads_both(store: SharedStore) {
        let (user, first) = register(&store, "alice", "").await;
        let (u, s) = store
            .session_with_user(user.id, &first.id, NOW)
            .await
            .unwrap();
        assert_eq!(u, Some(user));
        assert_eq!(s, Some(first));
    }

    async fn session_with_user_missing_parts_read_as_none(store: SharedStore) {
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

    async fn session_with_user_expired_session_reads_as_none(store: SharedStore) {
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

    async fn session_with_user_other_users_session_reads_as_none(store: SharedStore) {
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

    async fn session_is_valid_only_for_the_users_live_session(store: SharedStore) {
        let (alice, first) = register(&store, "alice", "").await;
        let (bob, _) = register(&store, "bob", "").await;
        assert!(store.session_is_valid(alice.id, &first.id, NOW).await.unwrap());
        assert!(store.session_is_valid(alice.id, &first.id, first.expires_at - 1).await.unwrap());
        assert!(!store.session_is_valid(alice.id, &first.id, first.expires_at).await.unwrap(), "over at expires_at");
        assert!(!store.session_is_valid(bob.id, &first.id, NOW).await.unwrap(), "another user's session");
        assert!(!store.session_is_valid(424_242, &first.id, NOW).await.unwrap(), "no such user");
        assert!(!store.session_is_valid(alice.id, "no-such-session", NOW).await.unwrap());
        assert!(!store.session_is_valid(alice.id, "", NOW).await.unwrap());
        assert!(store.end_session(&first.id).await.unwrap());
        assert!(!store.session_is_valid(alice.id, &first.id, NOW).await.unwrap(), "an ended session");
    }

    async fn rotate_refresh_happy_path(store: SharedStore) {
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

    async fn rotate_refresh_replay_is_blacklisted(store: SharedStore) {
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

    async fn rotate_refresh_wrong_jti_is_session_ended(store: SharedStore) {
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

    async fn rotate_refresh_expired_or_foreign_session_is_session_ended(store: SharedStore) {
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

    async fn rotate_refresh_inactive_user(store: SharedStore) {
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

    async fn rotate_refresh_missing_user(store: SharedStore) {
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

    async fn rotate_refresh_checks_blacklist_first(store: SharedStore) {
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

    async fn rotate_refresh_ignores_expired_blacklist_entries(store: SharedStore) {
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

    async fn concurrent_rotations_of_one_token_rotate_once(store: SharedStore) {
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

    async fn logout_ends_session_then_already_blacklisted(store: SharedStore) {
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

    async fn logout_with_non_current_token_still_blacklists(store: SharedStore) {
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

    async fn logout_without_session_still_blacklists(store: SharedStore) {
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

    async fn logout_after_blacklist_entry_expired(store: SharedStore) {
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

    async fn end_session_ends_only_that_session(store: SharedStore) {
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

    async fn end_sessions_keeps_the_kept_one(store: SharedStore) {
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

    async fn end_sessions_ends_all_without_keep(store: SharedStore) {
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
    async fn rotation_records_the_previous_token_and_the_last_use(store: SharedStore) {
        let (_, first) = register(&store, "alice", "").await;
        assert_eq!(live_session(&store, &first, NOW).await.unwrap().previous_jti, None);
        let r = rotation(&first, "alice-r1", "alice-r2", NOW + 60);
        assert_eq!(store.rotate_refresh(r).await.unwrap(), RotateOutcome::Rotated);
        let s = live_session(&store, &first, NOW + 61).await.unwrap();
        assert_eq!(
            (s.previous_jti.as_deref(), s.last_used_at, s.created_at),
            (Some("alice-r1"), NOW + 60, first.created_at)
        );
        assert_eq!((s.device.as_str(), s.ip.as_str()), (first.device.as_str(), first.ip.as_str()));
        let r2 = Rotation { old_exp: NOW + 2 * HOUR, ..rotation(&first, "alice-r2", "alice-r3", NOW + 90) };
        assert_eq!(store.rotate_refresh(r2).await.unwrap(), RotateOutcome::Rotated);
        let s = live_session(&store, &first, NOW + 91).await.unwrap();
        assert_eq!((s.previous_jti.as_deref(), s.last_used_at), (Some("alice-r2"), NOW + 90));
        // A refused rotation (a replay) changes neither.
        let replay = rotation(&first, "alice-r1", "alice-r9", NOW + 120);
        assert_eq!(store.rotate_refresh(replay).await.unwrap(), RotateOutcome::Blacklisted);
        let s = live_session(&store, &first, NOW + 121).await.unwrap();
        assert_eq!((s.previous_jti.as_deref(), s.last_used_at), (Some("alice-r2"), NOW + 90));
    }

    async fn user_sessions_are_the_users_live_sessions(store: SharedStore) {
        let (alice, first) = register(&store, "alice", "").await;
        let (bob, _) = register(&store, "bob", "").await;
        let phone = Session { device: "Pixel 8".into(), ip: "2001:db8::1".into(), ..session("phone", alice.id, "p1") };
        let short = Session { expires_at: NOW + 10, ..session("short", alice.id, "s1") };
        store.start_session(phone.clone(), NOW).await.unwrap();
        store.start_session(short.clone(), NOW).await.unwrap();
        let ids = |sessions: Vec<Session>| {
            let mut ids: Vec<String> = sessions.into_iter().map(|s| s.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(store.user_sessions(alice.id, NOW).await.unwrap()), ["alice-s1", "phone", "short"]);
        assert_eq!(ids(store.user_sessions(alice.id, NOW + 10).await.unwrap()), ["alice-s1", "phone"]);
        assert_eq!(ids(store.user_sessions(bob.id, NOW).await.unwrap()), ["bob-s1"]);
        assert!(store.user_sessions(424_242, NOW).await.unwrap().is_empty());
        let read = store.user_sessions(alice.id, NOW).await.unwrap();
        assert_eq!(read.iter().find(|s| s.id == "phone"), Some(&phone), "every attribute read back");
        assert_eq!(read.iter().find(|s| s.id == first.id), Some(&first));
    }

    async fn end_user_session_ends_only_a_live_session_of_that_user(store: SharedStore) {
        let (alice, first) = register(&store, "alice", "").await;
        let (bob, bobs) = register(&store, "bob", "").await;
        // Never another user's: Bob's session stays, whatever Alice sends.
        assert!(!store.end_user_session(alice.id, &bobs.id, NOW).await.unwrap());
        assert!(live_session(&store, &bobs, NOW).await.is_some());
        assert!(!store.end_user_session(alice.id, "no-such-session", NOW).await.unwrap());
        // An expired session is no longer there to end.
        assert!(!store.end_user_session(alice.id, &first.id, first.expires_at).await.unwrap());
        assert!(store.end_user_session(alice.id, &first.id, NOW).await.unwrap());
        assert_eq!(live_session(&store, &first, NOW).await, None);
        assert!(!store.end_user_session(alice.id, &first.id, NOW).await.unwrap(), "once");
        // The rotation of an ended session's token fails and spends nothing.
        let r = rotation(&first, "alice-r1", "alice-r2", NOW + 1);
        assert_eq!(store.rotate_refresh(r).await.unwrap(), RotateOutcome::SessionEnded);
        assert!(store.end_user_session(bob.id, &bobs.id, NOW).await.unwrap());
    }

    async fn ending_a_session_while_it_rotates_leaves_it_ended(store: SharedStore) {
        let (alice, _) = register(&store, "alice", "").await;
        for round in 0..10 {
            let s = session(&format!("race-{round}"), alice.id, &format!("race-{round}-r1"));
            store.start_session(s.clone(), NOW).await.unwrap();
            let (ended, rotated) = tokio::join!(
                tokio::spawn({
                    let (store, id) = (store.clone(), s.id.clone());
                    async move { store.end_user_session(alice.id, &id, NOW + 1).await }
                }),
                tokio::spawn({
                    let (store, r) = (store.clone(), rotation(&s, &s.refresh_jti, &format!("race-{round}-r2"), NOW + 1));
                    async move { store.rotate_refresh(r).await }
                }),
            );
            assert!(ended.unwrap().unwrap(), "round {round}: the session was live until ended");
            let rotated = rotated.unwrap().unwrap();
            assert!(matches!(rotated, RotateOutcome::Rotated | RotateOutcome::SessionEnded), "round {round}: {rotated:?}");
            assert_eq!(live_session(&store, &s, NOW + 2).await, None, "round {round}: ended, whichever came first");
        }
    }
});
