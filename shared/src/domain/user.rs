//! Usernames: Django's `UnicodeUsernameValidator` rules and its messages.

pub const MAX_USERNAME_LENGTH: usize = 150;
pub const INVALID_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
pub const EMAIL_TAKEN: &str = "A user is already registered with this e-mail address.";

/// Django normalises usernames with NFKC before validating and storing them.
pub fn normalize_username(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.nfkc().collect()
}

/// `^[\w.@+-]+\Z` with Python's Unicode `\w`: letters (CJK included), digits, `_`, and `.@+-`.
pub fn is_valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'))
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
}
