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
        /// SHA-256 of the current refresh secret.
        refresh_hash -> Text,
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

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions);
