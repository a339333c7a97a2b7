//! `BlacklistStore`: spent refresh tokens and the purge of expired rows.

use super::backends;
use super::fixtures::*;

conformance!([sqlite, dynamodb] {
    async fn blacklisted_ignores_expired_entries(store: SharedStore) {
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

    async fn purge_expired_never_removes_live_rows(store: SharedStore) {
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
});
