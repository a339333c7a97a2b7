//! Usernames: Django's `UnicodeUsernameValidator` rules and its messages, look-alikes, uniqueness.

use crate::domain::fields::{Data, Field, FieldErrors};
use crate::domain::Result;
use crate::store::Store;

pub const MAX_USERNAME_LENGTH: usize = 150;
pub const INVALID_USERNAME: &str =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
pub const EMAIL_TAKEN: &str = "A user is already registered with this e-mail address.";

/// Django normalises usernames with NFKC before validating and storing them.
pub fn normalize_username(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.nfkc().collect()
}

/// The key under which usernames must be unique: the UTS #39 confusable skeleton of the
/// lowercased name, so that a look-alike (Cyrillic "а" in "pаypal" next to "paypal", "ｌ" for "l")
/// is the same name. Logins still match on the lowercased name itself.
pub fn username_skeleton(username: &str) -> String {
    unicode_security::confusable_detection::skeleton(&username.to_lowercase()).collect()
}

/// `^[\w.@+-]+\Z` with Python's Unicode `\w`: letters (CJK included), digits, `_`, and `.@+-`.
pub fn is_valid_username(username: &str) -> bool {
    !username.is_empty() && username.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'))
}

/// Reads and checks a username field: length, characters, and (unless it is `own`) uniqueness.
pub(crate) async fn read_username(
    store: &dyn Store,
    field: Field,
    data: &Data,
    errors: &mut FieldErrors,
    own_id: Option<u64>,
) -> Result<Option<String>> {
    let Some(raw) = field.read(data, errors) else { return Ok(None) };
    let username = normalize_username(&raw);
    if !is_valid_username(&username) {
        errors.add(field.name, INVALID_USERNAME);
        return Ok(None);
    }
    if let Some(existing) = store.find_user_by_username(&username).await? {
        if Some(existing.id) != own_id {
            errors.add(field.name, USERNAME_TAKEN);
            return Ok(None);
        }
    }
    Ok(Some(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for ok in ["15313988692", "小明", "a.b@c+d-e_f", "Ünïcødé"] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in ["bad name", "x!", "a/b", "", "tab\t"] {
            assert!(!is_valid_username(bad), "{bad}");
        }
        assert_eq!(normalize_username("ｆｕｌｌｗｉｄｔｈ"), "fullwidth");
    }

    #[test]
    fn look_alike_usernames_share_a_skeleton() {
        // Cyrillic а (U+0430) and о (U+043E) in otherwise Latin names.
        assert_eq!(username_skeleton("p\u{0430}ypal"), username_skeleton("paypal"));
        assert_eq!(username_skeleton("PayPal"), username_skeleton("paypal"));
        assert_eq!(username_skeleton("g\u{043E}\u{043E}gle"), username_skeleton("google"));
        assert_ne!(username_skeleton("alice"), username_skeleton("alicia"));
        // Names in other scripts keep their own skeletons.
        assert_ne!(username_skeleton("小明"), username_skeleton("小红"));
    }
}
