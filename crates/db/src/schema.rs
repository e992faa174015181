//! diesel table definitions, shared by both backends (see `migrations/`).

diesel::table! {
    /// User accounts.
    users (id) {
        /// Primary key.
        id -> BigInt,
        /// The name as chosen.
        username -> Text,
        /// Lower-cased username, unique.
        username_key -> Text,
        /// Lower-cased e-mail, unique.
        email -> Text,
        /// Name shown to others.
        display_name -> Text,
        /// bcrypt hash.
        password_hash -> Text,
        /// Site administrator.
        is_admin -> Bool,
        /// Deactivated accounts cannot log in.
        is_active -> Bool,
        /// Sign-up time (UTC).
        created_at -> Timestamp,
        /// Last authenticated activity (UTC).
        last_seen_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Login sessions (one per refresh-token family).
    sessions (id) {
        /// Random session id, carried as `sid` in access tokens.
        id -> Text,
        /// Owner.
        user_id -> BigInt,
        /// Per-session secret mixed into refresh-token MACs.
        refresh_nonce -> Text,
        /// Generation of the only refresh token that may be exchanged now.
        refresh_gen -> BigInt,
        /// Login time.
        created_at -> Timestamp,
        /// Last rotation.
        refreshed_at -> Timestamp,
        /// End of the refresh window.
        expires_at -> Timestamp,
        /// Set on logout, reuse detection or deactivation.
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One relation per unordered user pair: pending, accepted or declined.
    friendships (id) {
        /// Primary key (the friend request id).
        id -> BigInt,
        /// The smaller user id of the pair.
        user_low -> BigInt,
        /// The larger user id of the pair.
        user_high -> BigInt,
        /// Who asked.
        requester_id -> BigInt,
        /// `pending`, `accepted` or `declined`.
        status -> Text,
        /// First request.
        created_at -> Timestamp,
        /// Last change.
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Direct and group chats.
    chats (id) {
        /// Primary key.
        id -> BigInt,
        /// `direct` or `group`.
        kind -> Text,
        /// Group name.
        name -> Nullable<Text>,
        /// Group description.
        description -> Nullable<Text>,
        /// `public` or `private`.
        visibility -> Text,
        /// `low:high` for direct chats.
        direct_key -> Nullable<Text>,
        /// Creator.
        created_by -> Nullable<BigInt>,
        /// Creation time.
        created_at -> Timestamp,
        /// Highest message seq.
        last_seq -> BigInt,
        /// Creation or last message.
        last_activity_at -> Timestamp,
        /// Members, kept with every join and leave.
        member_count -> Integer,
    }
}

diesel::table! {
    /// Who is in which chat.
    memberships (chat_id, user_id) {
        /// The chat.
        chat_id -> BigInt,
        /// The member.
        user_id -> BigInt,
        /// `owner`, `admin` or `member`.
        role -> Text,
        /// Join time.
        joined_at -> Timestamp,
        /// Highest seq the member has read.
        last_read_seq -> BigInt,
        /// Notifications muted.
        muted -> Bool,
    }
}

diesel::table! {
    /// Chat messages.
    messages (id) {
        /// Primary key.
        id -> BigInt,
        /// The chat.
        chat_id -> BigInt,
        /// Author (null once the account is gone).
        sender_id -> Nullable<BigInt>,
        /// Per-chat, gapless, strictly increasing.
        seq -> BigInt,
        /// Text (blank once deleted).
        content -> Text,
        /// The sender's idempotency key.
        client_id -> Nullable<Text>,
        /// The message this one answers.
        reply_to -> Nullable<BigInt>,
        /// Sent.
        created_at -> Timestamp,
        /// Last edit.
        edited_at -> Nullable<Timestamp>,
        /// Soft deletion.
        deleted_at -> Nullable<Timestamp>,
        /// Mentioned members' ids, comma-separated, resolved at send.
        mentions -> Nullable<Text>,
        /// The attachments it carries, as rendered (a JSON array).
        attachments -> Nullable<Text>,
    }
}

diesel::table! {
    /// Files uploaded to chats (their bytes are in the file store).
    attachments (id) {
        /// Primary key.
        id -> BigInt,
        /// The chat.
        chat_id -> BigInt,
        /// Who uploaded it.
        uploader_id -> Nullable<BigInt>,
        /// The message carrying it, once sent.
        message_id -> Nullable<BigInt>,
        /// Taken by a send on its way to the writer.
        claimed -> Bool,
        /// Where the bytes are.
        storage_key -> Text,
        /// Name as uploaded (cleaned).
        filename -> Text,
        /// Sniffed media type.
        content_type -> Text,
        /// Bytes.
        size -> BigInt,
        /// Image width.
        width -> Nullable<Integer>,
        /// Image height.
        height -> Nullable<Integer>,
        /// Upload time.
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Emoji reactions: one row per (message, member, emoji).
    message_reactions (message_id, user_id, emoji) {
        /// The message.
        message_id -> BigInt,
        /// Who reacted.
        user_id -> BigInt,
        /// The emoji sequence.
        emoji -> Text,
        /// When.
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// One row per mention of a member in a message (unread-mention counts).
    message_mentions (user_id, chat_id, seq) {
        /// Who is mentioned.
        user_id -> BigInt,
        /// The chat.
        chat_id -> BigInt,
        /// The message's seq.
        seq -> BigInt,
        /// The message.
        message_id -> BigInt,
    }
}

diesel::table! {
    /// Who blocked whom.
    user_blocks (blocker_id, blocked_id) {
        /// Who blocked.
        blocker_id -> BigInt,
        /// Who is blocked.
        blocked_id -> BigInt,
        /// Since.
        created_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(memberships -> chats (chat_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(message_reactions -> messages (message_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    friendships,
    chats,
    memberships,
    messages,
    user_blocks,
    message_reactions,
    message_mentions,
    attachments
);
