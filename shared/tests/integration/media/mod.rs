//! The media conformance suite (every `MediaStore` backend: the local folder and S3 on moto,
//! each test on a fresh one), and what each backend does on its own.

mod objects;

mod folder_only;
mod s3_only;

/// A fresh, empty media store of each backend.
mod backends {
    use std::sync::Arc;

    use accounts::media::SharedMedia;

    pub async fn folder() -> SharedMedia {
        Arc::new(super::folder_only::fresh_folder().0)
    }

    pub async fn s3() -> SharedMedia {
        Arc::new(testkit::s3::fresh_s3().await)
    }
}
