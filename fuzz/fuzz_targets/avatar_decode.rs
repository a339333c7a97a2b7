//! Image decoding: arbitrary bytes through the avatar processing (`media::picture::process`).
//! Whatever comes in, the answer is a refusal or a picture within the bounds, and the stored
//! bytes are themselves an image the same processing accepts.
#![no_main]

use accounts::media::picture::{process, AvatarBounds};
use libfuzzer_sys::fuzz_target;

const BOUNDS: AvatarBounds = AvatarBounds { max_bytes: 1 << 20, max_side: 64 };

fuzz_target!(|data: &[u8]| {
    let Ok(picture) = process(data, BOUNDS) else { return };
    assert!(picture.width <= BOUNDS.max_side && picture.height <= BOUNDS.max_side, "{}x{}", picture.width, picture.height);
    assert!(picture.width > 0 && picture.height > 0);
    let again = process(&picture.bytes, BOUNDS).expect("the re-encoded picture is an image");
    assert_eq!((again.width, again.height), (picture.width, picture.height));
});
