//! Newtype ids, so a user id can never be passed where a chat id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    };
}

id!(
    /// Identifier of a user account.
    UserId
);
id!(
    /// Identifier of a chat (group or direct).
    ChatId
);
id!(
    /// Identifier of a message.
    MessageId
);
id!(
    /// A message's position in its chat: 1, 2, 3, … without gaps.
    Seq
);

impl Seq {
    /// The seq after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// The seq before this one.
    pub fn prev(self) -> Seq {
        Seq(self.0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_on_the_wire() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&ChatId(7))?, "7");
        assert_eq!(serde_json::from_str::<Seq>("12")?, Seq(12));
        assert_eq!(ChatId(3).to_string(), "3");
        Ok(())
    }
}
