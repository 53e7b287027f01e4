//! [`Text`]: the string fields of a generated [`Bid`](super::Bid), cloned and dropped
//! without allocating.
//!
//! A bid's `channel`, `url` and `extra` are pieces of the generator's string tables
//! (10,004 channel/URL pairs, a 1 MiB padding pool), which depend only on the seed.
//! The generator builds those tables once per seed and process and keeps them for the
//! rest of it, so a generated bid borrows them (`Text::Static`): building, cloning,
//! shipping and dropping a bid touches no allocator and no shared reference count. A
//! bid read from a CSV file owns its text (`Text::Owned`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// An immutable string: borrowed from a table that lives as long as the process, or
/// owned. Compares, orders and hashes as its text, whichever it is.
#[derive(Clone)]
pub enum Text {
    /// Text of a table kept for the life of the process (generated records).
    Static(&'static str),
    /// Text of its own (records read from files).
    Owned(Box<str>),
}

impl Text {
    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(text) => text,
            Text::Owned(text) => text,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Static("")
    }
}

impl Deref for Text {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text::Owned(text.into_boxed_str())
    }
}

impl From<&'static str> for Text {
    fn from(text: &'static str) -> Self {
        Text::Static(text)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Text {
    /// Hashes as the `str` (consistent with `Borrow<str>`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Snapshots hold the text; a restored `Text` owns it.
impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn static_and_owned_text_are_the_same_text() {
        let borrowed = Text::Static("channel-7");
        let owned = Text::from("channel-7".to_string());
        assert_eq!(borrowed, owned);
        assert_eq!(owned, "channel-7");
        assert!(Text::Static("a") < Text::from("b".to_string()));
        let set: HashSet<Text> = [borrowed, owned].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains("channel-7"));
        assert_eq!(format!("{}", Text::Static("x")), "x");
        assert_eq!(Text::default().len(), 0);
    }
}
