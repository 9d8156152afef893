//! User names for uids, from `/etc/passwd` (no NSS: names from LDAP and the like show as numbers).

use std::collections::HashMap;

/// The names of the users in `/etc/passwd`, by uid; empty if it cannot be read.
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    /// Reads `/etc/passwd`.
    pub fn read() -> Self {
        std::fs::read_to_string("/etc/passwd").map(|text| Self::parse(&text)).unwrap_or_default()
    }

    fn parse(text: &str) -> Self {
        let mut names = HashMap::new();
        for line in text.lines() {
            let mut fields = line.split(':');
            if let (Some(name), Some(_password), Some(uid)) =
                (fields.next(), fields.next(), fields.next())
                && let Ok(uid) = uid.parse()
            {
                names.entry(uid).or_insert_with(|| name.to_owned());
            }
        }
        Self(names)
    }

    /// The name of `uid`, if known.
    pub fn name(&self, uid: u32) -> Option<&str> {
        self.0.get(&uid).map(String::as_str)
    }

    /// The name of `uid`, or the number.
    pub fn display(&self, uid: u32) -> String {
        self.name(uid).map_or_else(|| uid.to_string(), str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passwd_lines() {
        let users = Users::parse(
            "root:x:0:0:root:/root:/bin/sh\nbad line\nme:x:1000:1000::/home/me:/bin/sh\n",
        );
        assert_eq!(users.name(0), Some("root"));
        assert_eq!(users.display(1000), "me");
        assert_eq!(users.display(7), "7");
    }
}
