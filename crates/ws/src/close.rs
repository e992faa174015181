//! Close codes and reasons (see docs/protocol.md).

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The outbound queue overflowed: the client is too slow. Reconnect and recover
    /// with `after_seq`.
    Lagging,
    /// The session was ended (logout, password change, deactivation).
    SessionRevoked,
    /// The user's permissions changed (admin rights): reconnect to apply them.
    Reauthenticate,
    /// The user is no longer a member of the socket's chat.
    RemovedFromChat,
    /// The socket's chat was deleted.
    ChatDeleted,
    /// A frame exceeded the size limit.
    TooLarge,
    /// No frame or pong for too long.
    Idle,
    /// The server is shutting down.
    GoingAway,
    /// The client broke the WebSocket framing rules.
    ProtocolError,
    /// A text frame was not UTF-8.
    InvalidText,
}

impl Closing {
    /// The close code.
    pub fn code(self) -> u16 {
        match self {
            Closing::Lagging => 4000,
            Closing::SessionRevoked => 4001,
            Closing::Reauthenticate => 4002,
            Closing::RemovedFromChat => 4003,
            Closing::ChatDeleted => 4004,
            Closing::TooLarge => 1009,
            Closing::Idle | Closing::GoingAway => 1001,
            Closing::ProtocolError => 1002,
            Closing::InvalidText => 1007,
        }
    }

    /// The close reason text.
    pub fn reason(self) -> &'static str {
        match self {
            Closing::Lagging => "lagging: reconnect and recover with after_seq",
            Closing::SessionRevoked => "session revoked",
            Closing::Reauthenticate => "permissions changed: reconnect",
            Closing::RemovedFromChat => "removed from chat",
            Closing::ChatDeleted => "chat deleted",
            Closing::TooLarge => "frame too large",
            Closing::Idle => "idle timeout",
            Closing::GoingAway => "server going away",
            Closing::ProtocolError => "protocol error",
            Closing::InvalidText => "text frames must be UTF-8",
        }
    }
}
