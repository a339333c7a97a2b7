//! `ThrottleStore`: reservations in sliding-window counters.

use super::backends;
use super::fixtures::*;

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

conformance!([sqlite, dynamodb] {
    async fn reserve_admits_up_to_the_limit_per_window(store: SharedStore) {
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

    async fn reserve_is_all_or_nothing(store: SharedStore) {
        let (account, ip) = (rule("login-fail:account:alice", 5, 300), rule("login-fail:ip:unknown", 1, 60));
        assert!(admitted(&store, &[account.clone(), ip.clone()], NOW).await.is_some());
        // The IP is full: the account's counter does not move either.
        assert!(admitted(&store, &[account.clone(), ip.clone()], NOW).await.is_none());
        let (_, usages) = store.login_lookup("alice", &[account, ip], NOW).await.unwrap();
        assert_eq!(usages.iter().map(|u| u.current).collect::<Vec<_>>(), vec![1, 1]);
    }

    async fn parallel_reservations_admit_exactly_the_limit(store: SharedStore) {
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

    async fn a_window_boundary_admits_no_more_than_the_limit(store: SharedStore) {
        // Attempts timed just before and just after a window boundary, fired together: at the
        // boundary the previous window weighs fully, so all of them together get the limit, as
        // one at a time. A late attempt of the closed window must not count there after one of
        // the next window has read it (several rounds: the race is one of ordering).
        let (limit, boundary) = (10, NOW - NOW.rem_euclid(60) + 60);
        for round in 0..6 {
            let rules = vec![rule(&format!("login-fail:ip:192.0.2.{round}"), limit, 60)];
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(4 * limit as usize));
            let tasks: Vec<_> = (0..4 * limit as i64)
                .map(|i| {
                    let (store, rules, barrier) = (store.clone(), rules.clone(), barrier.clone());
                    let now = boundary - 1 + i % 2;
                    tokio::spawn(async move {
                        barrier.wait().await;
                        matches!(store.reserve(&rules, None, now).await.unwrap(), Admission::Admitted(_))
                    })
                })
                .collect();
            let mut admitted = 0;
            for task in tasks {
                admitted += u64::from(task.await.unwrap());
            }
            assert!(admitted <= limit, "round {round}: {admitted} admitted across the boundary, limit {limit}");
        }
    }

    async fn release_gives_the_places_back(store: SharedStore) {
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

    async fn login_lookup_reads_user_and_usage(store: SharedStore) {
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

    async fn look_alike_usernames_are_taken(store: SharedStore) {
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
    async fn clear_counters_deletes_only_those_windows(store: SharedStore) {
        let (account, other) = (rule("login-fail:account:alice", 2, 300), rule("login-fail:account:bob", 2, 300));
        for _ in 0..2 {
            assert!(admitted(&store, &[account.clone(), other.clone()], NOW).await.is_some());
        }
        assert!(admitted(&store, std::slice::from_ref(&account), NOW).await.is_none());
        let (current, previous) = account.keys(NOW);
        store.clear_counters(&[current, previous]).await.unwrap();
        let (_, usages) = store.login_lookup("alice", &[account.clone(), other.clone()], NOW).await.unwrap();
        assert_eq!(usages.iter().map(|u| u.current).collect::<Vec<_>>(), vec![0, 2], "bob's counter stays");
        assert!(admitted(&store, &[account], NOW).await.is_some());
        store.clear_counters(&["login-fail:account:nobody@0".into()]).await.unwrap();
    }
});
