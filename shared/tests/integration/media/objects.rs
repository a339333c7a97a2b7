//! `MediaStore`: the behaviour every media backend shares, run on the local folder and on S3.

use std::time::Duration;

use accounts::domain::avatars::{sweep_orphans, ORPHAN_GRACE_SECONDS};
use accounts::media::{new_avatar_key, upload_key, Bounded, MediaError, SharedMedia};
use axum::body::Bytes;

use super::backends;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

conformance!([folder, s3] {
    async fn put_then_get_returns_bytes_and_content_type(media: SharedMedia) {
        let key = new_avatar_key(1, "png");
        media.put(&key, Bytes::from_static(b"\x89PNG fake"), "image/png").await.unwrap();
        let object = media.get(&key).await.unwrap().expect("the object");
        assert_eq!(object.bytes, Bytes::from_static(b"\x89PNG fake"));
        assert_eq!(object.content_type, "image/png");
        let jpeg = new_avatar_key(1, "jpg");
        media.put(&jpeg, Bytes::from_static(b"jpeg"), "image/jpeg").await.unwrap();
        assert_eq!(media.get(&jpeg).await.unwrap().unwrap().content_type, "image/jpeg");
    }

    async fn put_replaces_an_object(media: SharedMedia) {
        let key = upload_key(2, "0123456789abcdef0123456789abcdef");
        media.put(&key, Bytes::from_static(b"first"), "application/octet-stream").await.unwrap();
        media.put(&key, Bytes::from_static(b"second, longer"), "application/octet-stream").await.unwrap();
        assert_eq!(media.get(&key).await.unwrap().unwrap().bytes, Bytes::from_static(b"second, longer"));
    }

    async fn missing_objects_read_as_none(media: SharedMedia) {
        let key = new_avatar_key(3, "png");
        assert_eq!(media.get(&key).await.unwrap(), None);
        assert_eq!(media.size(&key).await.unwrap(), None);
        assert!(media.list("avatar/3/").await.unwrap().is_empty());
    }

    async fn size_reports_bytes_without_reading(media: SharedMedia) {
        let key = upload_key(4, "0123456789abcdef0123456789abcdef");
        media.put(&key, Bytes::from(vec![7u8; 1234]), "application/octet-stream").await.unwrap();
        assert_eq!(media.size(&key).await.unwrap(), Some(1234));
        // A key that is only a prefix of the object's is another, missing object.
        assert_eq!(media.size(&upload_key(4, "0123456789abcdef")).await.unwrap(), None);
    }

    /// Parallel bounded reads of objects over and within the bound: the big ones answer only their
    /// size, the others their bytes; a missing object is `None`, an empty one is empty.
    async fn get_at_most_reads_within_the_bound_only(media: SharedMedia) {
        let big = upload_key(10, "0123456789abcdef0123456789abcdef");
        let small = upload_key(10, "fedcba9876543210fedcba9876543210");
        let empty = upload_key(10, "00000000000000000000000000000000");
        media.put(&big, Bytes::from(vec![1u8; 3 * 1024 * 1024]), "application/octet-stream").await.unwrap();
        media.put(&small, Bytes::from(vec![2u8; 1000]), "application/octet-stream").await.unwrap();
        media.put(&empty, Bytes::new(), "application/octet-stream").await.unwrap();
        let reads: Vec<_> = (0..6)
            .map(|i| {
                let (media, key) = (media.clone(), if i % 2 == 0 { big.clone() } else { small.clone() });
                tokio::spawn(async move { media.get_at_most(&key, 1000).await.unwrap() })
            })
            .collect();
        for (i, read) in reads.into_iter().enumerate() {
            match read.await.unwrap() {
                Some(Bounded::Over { size }) if i % 2 == 0 => assert_eq!(size, 3 * 1024 * 1024),
                Some(Bounded::Within(object)) if i % 2 == 1 => assert_eq!(object.bytes, Bytes::from(vec![2u8; 1000])),
                other => panic!("read {i}: {other:?}"),
            }
        }
        assert!(matches!(media.get_at_most(&small, 999).await.unwrap(), Some(Bounded::Over { size: 1000 })));
        assert!(matches!(media.get_at_most(&empty, 1000).await.unwrap(), Some(Bounded::Within(o)) if o.bytes.is_empty()));
        assert_eq!(media.get_at_most(&upload_key(10, "11111111111111111111111111111111"), 1000).await.unwrap(), None);
    }

    async fn delete_removes_and_missing_delete_is_fine(media: SharedMedia) {
        let key = new_avatar_key(5, "gif");
        let other = new_avatar_key(5, "gif");
        media.put(&key, Bytes::from_static(b"gif"), "image/gif").await.unwrap();
        media.put(&other, Bytes::from_static(b"gif"), "image/gif").await.unwrap();
        media.delete(&key).await.unwrap();
        assert_eq!(media.get(&key).await.unwrap(), None);
        assert!(media.get(&other).await.unwrap().is_some(), "only that object goes");
        media.delete(&key).await.expect("deleting a missing object is no error");
    }

    async fn list_filters_by_prefix_in_key_order(media: SharedMedia) {
        let before = now() - 60;
        let mut keys = vec![new_avatar_key(6, "png"), new_avatar_key(6, "jpg"), new_avatar_key(6, "png")];
        for key in &keys {
            media.put(key, Bytes::from_static(b"abc"), "image/png").await.unwrap();
        }
        media.put(&new_avatar_key(60, "png"), Bytes::from_static(b"x"), "image/png").await.unwrap();
        media.put(&upload_key(6, "0123456789abcdef0123456789abcdef"), Bytes::from_static(b"x"), "image/png").await.unwrap();
        keys.sort();
        let listed = media.list("avatar/6/").await.unwrap();
        assert_eq!(listed.iter().map(|e| e.key.clone()).collect::<Vec<_>>(), keys, "avatar/60/ and uploads are not avatar/6/");
        for entry in &listed {
            assert_eq!(entry.size, 3);
            assert!(entry.last_modified >= before && entry.last_modified <= now() + 60, "{entry:?}");
        }
        assert_eq!(media.list("avatar/").await.unwrap().len(), 4);
    }

    async fn keys_the_server_would_not_make_are_refused(media: SharedMedia) {
        for key in ["../outside.png", "avatar/../../x", "avatar//x.png", "/avatar/x.png", "avatar/.x"] {
            let put = media.put(key, Bytes::from_static(b"x"), "image/png").await;
            assert!(matches!(put, Err(MediaError::InvalidKey(_))), "{key}: {put:?}");
            assert!(matches!(media.get(key).await, Err(MediaError::InvalidKey(_))), "{key}");
            assert!(matches!(media.delete(key).await, Err(MediaError::InvalidKey(_))), "{key}");
        }
    }

    async fn upload_target_is_a_put_for_that_key(media: SharedMedia) {
        let key = upload_key(7, "0123456789abcdef0123456789abcdef");
        let target = media.upload_target(&key, 1234, Duration::from_secs(60), "http://127.0.0.1:1").await.unwrap();
        assert_eq!(target.method, "PUT");
        let length = target.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        assert_eq!(length.map(|(_, value)| value.as_str()), Some("1234"), "the client is told the bound length");
        assert!(target.url.starts_with("http"), "{}", target.url);
        assert!(target.url.contains(&key), "{} names the key", target.url);
    }

    async fn sweep_deletes_only_old_orphans_of_that_user(media: SharedMedia) {
        let current = new_avatar_key(8, "png");
        let orphan = new_avatar_key(8, "png");
        let neighbour = new_avatar_key(9, "png");
        for key in [&current, &orphan, &neighbour] {
            media.put(key, Bytes::from_static(b"x"), "image/png").await.unwrap();
        }
        // Just written: inside the grace period, so an upload still on its way is never taken.
        assert_eq!(sweep_orphans(&*media, 8, Some(&current), now()).await.unwrap(), 0);
        // An hour and more later the orphan goes; the current avatar and other users' stay.
        assert_eq!(sweep_orphans(&*media, 8, Some(&current), now() + ORPHAN_GRACE_SECONDS + 120).await.unwrap(), 1);
        assert_eq!(media.get(&orphan).await.unwrap(), None);
        assert!(media.get(&current).await.unwrap().is_some());
        assert!(media.get(&neighbour).await.unwrap().is_some());
    }
});
