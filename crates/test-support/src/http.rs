//! HTTP helpers: requests as a client would send them, answers as JSON.

use actix_web::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::TestApp;

/// Password given to users made by [`TestApp::register`].
pub const TEST_PASSWORD: &str = "correct horse battery";

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: actix_web::http::header::HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// The body's bytes.
    pub bytes: Vec<u8>,
}

impl Response {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `code` of a problem+json answer.
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    /// Fails unless the answer is problem+json with this status and code.
    pub fn expect_problem(&self, status: u16, code: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.status.as_u16() == status && self.code() == code,
            "expected {status} {code}, got {} {}",
            self.status,
            self.text
        );
        let content_type = self.header("content-type").unwrap_or_default();
        anyhow::ensure!(
            content_type == "application/problem+json",
            "content type was {content_type:?}"
        );
        anyhow::ensure!(
            self.json["status"] == status
                && self.json["type"].is_string()
                && self.json["title"].is_string()
        );
        anyhow::ensure!(
            self.json["detail"].is_string(),
            "problem without detail: {}",
            self.text
        );
        Ok(())
    }

    /// Fails unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> anyhow::Result<&Self> {
        anyhow::ensure!(
            self.status.as_u16() == status,
            "expected {status}, got {} {}",
            self.status,
            self.text
        );
        Ok(self)
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// User id.
    pub user_id: i64,
    /// Username.
    pub username: String,
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
}

impl Session {
    fn from_pair(json: &Value) -> anyhow::Result<Self> {
        Ok(Session {
            user_id: json["user"]["id"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("no user id in {json}"))?,
            username: json["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            access_token: json["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh_token: json["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

impl TestApp {
    /// Sends a request; `body` is sent as-is with `content_type` when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Response> {
        self.request_with_headers(method, path, token, &[], body)
            .await
    }

    /// Like [`TestApp::request`], with extra request headers (a browser's `Origin`, …).
    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Response> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        let mut response = match body {
            Some((content_type, bytes)) => {
                request
                    .insert_header(("Content-Type", content_type))
                    .send_body(bytes)
                    .await
            }
            None => request.send().await,
        }
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let bytes = response.body().limit(16 * 1024 * 1024).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Response {
            status: response.status(),
            headers: response.headers().clone(),
            text,
            json,
            bytes: bytes.to_vec(),
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Response> {
        self.request(Method::GET, path, token, None).await
    }

    /// The value of an unlabelled series in this instance's `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.get("/metrics", None).await?.text;
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> anyhow::Result<Response> {
        self.request(Method::DELETE, path, token, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Response> {
        self.request(
            Method::POST,
            path,
            token,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Response> {
        self.request(
            Method::PATCH,
            path,
            token,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// `POST path` with a raw body of the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<Response> {
        self.request(Method::POST, path, None, Some((content_type, body.into())))
            .await
    }

    /// Signs `username` up (e-mail `<username>@example.com`, password [`TEST_PASSWORD`]).
    pub async fn register(&self, username: &str) -> anyhow::Result<Session> {
        let response = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": username, "email": format!("{username}@example.com"), "password": TEST_PASSWORD}),
            )
            .await?;
        response.expect_status(201)?;
        Session::from_pair(&response.json)
    }

    /// Logs `login` in with `password`.
    pub async fn login(&self, login: &str, password: &str) -> anyhow::Result<Session> {
        let response = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": login, "password": password}),
            )
            .await?;
        response.expect_status(200)?;
        Session::from_pair(&response.json)
    }

    /// `PUT /api/v1/chats/{chat}/members/{user_id}` as the holder of `token`.
    pub async fn add_member(
        &self,
        chat: i64,
        user_id: i64,
        token: &str,
    ) -> anyhow::Result<Response> {
        self.request(
            Method::PUT,
            &format!("/api/v1/chats/{chat}/members/{user_id}"),
            Some(token),
            None,
        )
        .await
    }

    /// Creates a group `owner` owns (`public` or `private`) and returns its id.
    pub async fn create_group(
        &self,
        owner: &Session,
        name: &str,
        visibility: &str,
    ) -> anyhow::Result<i64> {
        let created = self
            .post(
                "/api/v1/chats",
                Some(&owner.access_token),
                json!({"name": name, "visibility": visibility}),
            )
            .await?;
        created.expect_status(201)?;
        created.json["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no chat id: {}", created.text))
    }

    /// `who` says `text` in `chat` over REST (201 expected).
    pub async fn send_text(&self, who: &Session, chat: i64, text: &str) -> anyhow::Result<()> {
        self.send_message(who, chat, text).await.map(|_| ())
    }

    /// `who` says `text` in `chat` over REST (201 expected): the stored message.
    pub async fn send_message(
        &self,
        who: &Session,
        chat: i64,
        text: &str,
    ) -> anyhow::Result<Value> {
        let sent = self
            .post(
                &format!("/api/v1/chats/{chat}/messages"),
                Some(&who.access_token),
                json!({"content": text}),
            )
            .await?;
        sent.expect_status(201)?;
        Ok(sent.json)
    }

    /// `who` joins the public group `chat` (200 expected).
    pub async fn join(&self, who: &Session, chat: i64) -> anyhow::Result<()> {
        self.post(
            &format!("/api/v1/chats/{chat}/join"),
            Some(&who.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
        Ok(())
    }

    /// Two users, `ann` and `bob`, in a public group `ann` owns: the usual stage of
    /// message and WebSocket tests. Returns both and the chat id.
    pub async fn two_in_a_group(&self) -> anyhow::Result<(Session, Session, i64)> {
        let (ann, bob) = (self.register("ann").await?, self.register("bob").await?);
        let created = self
            .post(
                "/api/v1/chats",
                Some(&ann.access_token),
                json!({"name": "Room", "visibility": "public"}),
            )
            .await?;
        let chat = created.json["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no chat id: {}", created.text))?;
        self.post(
            &format!("/api/v1/chats/{chat}/join"),
            Some(&bob.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
        Ok((ann, bob, chat))
    }

    /// `a` asks `b` to be friends and `b` accepts.
    pub async fn befriend(&self, a: &Session, b: &Session) -> anyhow::Result<()> {
        let request = self
            .post(
                "/api/v1/friends/requests",
                Some(&a.access_token),
                json!({"user_id": b.user_id}),
            )
            .await?;
        request.expect_status(201)?;
        let id = request.json["id"].as_i64().unwrap_or_default();
        self.post(
            &format!("/api/v1/friends/requests/{id}/accept"),
            Some(&b.access_token),
            json!({}),
        )
        .await?
        .expect_status(200)?;
        Ok(())
    }

    /// Exchanges a refresh token (the raw answer, for unhappy paths).
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Response> {
        self.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Parses a token-pair answer.
    pub fn session_of(response: &Response) -> anyhow::Result<Session> {
        Session::from_pair(&response.json)
    }
}
