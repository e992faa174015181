//! `chat-server seed-demo`: demo accounts and conversations, so a new server has
//! something to look at (what seed 003's `load_data.py` did, through the same service
//! calls the API makes — nothing is written behind the rules' back).

use chat_domain::{ChatId, UserId};
use chat_services::auth::{Principal, RegisterInput, TokenPair, authenticate, register};
use chat_services::chats::{CreateGroupInput, add_member, create_group, join_chat, open_direct};
use chat_services::messages::{SendMessageInput, send_message};
use chat_services::{AppContext, friends};

/// The demo accounts: username and display name.
pub const USERS: [(&str, &str); 4] = [
    ("alice", "Alice Archer"),
    ("bob", "Bob Baker"),
    ("carol", "Carol Cooper"),
    ("dave", "Dave Dalton"),
];

/// What was created.
#[derive(Debug)]
pub struct Seeded {
    /// `(username, user id)` of each account.
    pub users: Vec<(String, UserId)>,
    /// `(name, chat id)` of each chat.
    pub chats: Vec<(String, ChatId)>,
    /// Messages sent.
    pub messages: usize,
}

struct Demo<'a> {
    ctx: &'a AppContext,
    principals: Vec<Principal>,
    messages: usize,
}

impl Demo<'_> {
    fn who(&self, index: usize) -> anyhow::Result<&Principal> {
        self.principals
            .get(index)
            .ok_or_else(|| anyhow::anyhow!("no demo user {index}"))
    }

    async fn say(&mut self, chat: ChatId, from: usize, lines: &[&str]) -> anyhow::Result<()> {
        for line in lines {
            let input = SendMessageInput {
                content: (*line).to_owned(),
                client_id: Some(format!("demo-{chat}-{}", self.messages)),
                reply_to: None,
                attachments: Vec::new(),
            };
            send_message(self.ctx, self.who(from)?, chat, input).await?;
            self.messages += 1;
        }
        Ok(())
    }
}

/// Creates the demo accounts (all with `password`), friendships (and one pending
/// request), a public and a private group and a direct chat, each with some history.
/// Refuses when any demo username is already taken: it seeds a fresh database once.
pub async fn seed(ctx: &AppContext, password: &str) -> anyhow::Result<Seeded> {
    for (username, _) in USERS {
        if chat_db::models::UserRow::find_by_login(&ctx.store.db, username)
            .await?
            .is_some()
        {
            anyhow::bail!(
                "user '{username}' already exists: seed-demo fills a fresh database once"
            );
        }
    }
    let mut demo = Demo {
        ctx,
        principals: Vec::new(),
        messages: 0,
    };
    let mut users = Vec::new();
    for (username, display_name) in USERS {
        let input = RegisterInput {
            username: username.to_owned(),
            email: format!("{username}@example.com"),
            password: password.to_owned(),
            display_name: Some(display_name.to_owned()),
        };
        let TokenPair {
            access_token, user, ..
        } = register(ctx, "seed-demo", input).await?;
        users.push((user.username.clone(), user.id));
        demo.principals
            .push(authenticate(ctx, &access_token).await?);
    }
    let id = |i: usize| users.get(i).map_or(UserId(0), |u| u.1);
    // alice, bob and carol are friends; dave has asked alice and waits for her answer.
    for (from, to) in [(0, 1), (0, 2), (1, 2)] {
        let (request, _) = friends::send_request(ctx, demo.who(from)?, id(to)).await?;
        friends::accept_request(ctx, demo.who(to)?, request.id).await?;
    }
    friends::send_request(ctx, demo.who(3)?, id(0)).await?;

    let mut chats = Vec::new();
    let general = create_group(
        ctx,
        demo.who(0)?,
        CreateGroupInput {
            name: "General".to_owned(),
            description: Some("Everyone's welcome: say hello".to_owned()),
            visibility: Some("public".to_owned()),
        },
    )
    .await?;
    for member in 1..USERS.len() {
        join_chat(ctx, demo.who(member)?, general.id).await?;
    }
    demo.say(general.id, 0, &["Welcome to the demo server!"])
        .await?;
    demo.say(
        general.id,
        1,
        &["Hi all 👋", "Is the release still on for Friday?"],
    )
    .await?;
    demo.say(
        general.id,
        2,
        &["It is. Notes: https://example.com/release-notes"],
    )
    .await?;
    demo.say(general.id, 3, &["Just joined, hello!"]).await?;
    chats.push((general.name.clone().unwrap_or_default(), general.id));

    let project = create_group(
        ctx,
        demo.who(1)?,
        CreateGroupInput {
            name: "Project X".to_owned(),
            description: Some("Invitation only".to_owned()),
            visibility: Some("private".to_owned()),
        },
    )
    .await?;
    for member in [0, 2] {
        add_member(ctx, demo.who(1)?, project.id, id(member)).await?;
    }
    demo.say(project.id, 1, &["Kick-off tomorrow at 10."])
        .await?;
    demo.say(project.id, 0, &["I'll bring the mock-ups."])
        .await?;
    demo.say(project.id, 2, &["Sounds good — see you there."])
        .await?;
    chats.push((project.name.clone().unwrap_or_default(), project.id));

    let (direct, _) = open_direct(ctx, demo.who(0)?, id(1)).await?;
    demo.say(direct.id, 0, &["Lunch later?"]).await?;
    demo.say(direct.id, 1, &["Sure, 12:30 at the usual place."])
        .await?;
    demo.say(direct.id, 0, &["👍"]).await?;
    chats.push(("alice ↔ bob".to_owned(), direct.id));

    Ok(Seeded {
        users,
        chats,
        messages: demo.messages,
    })
}

/// A random password for the demo accounts (16 URL-safe characters).
pub fn random_password() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}
