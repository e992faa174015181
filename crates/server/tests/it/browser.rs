//! What browsers are told: CORS for the origins of `CHAT_ALLOWED_ORIGINS` only,
//! `nosniff` on every answer, a Content-Security-Policy on the HTML pages.

use actix_web::http::Method;
use chat_test_support::{Backend, TestApp, both_backends};
use serde_json::json;

both_backends!(
    an_allowed_origin_gets_cors_headers_and_a_foreign_one_none,
    without_allowed_origins_no_origin_gets_cors_headers,
    a_wildcard_allows_any_origin_by_echoing_it,
    every_answer_is_nosniff_and_html_has_a_content_security_policy,
);

const APP: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example.net";

fn preflight<'a>(origin: &'a str, method: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
        (
            "Access-Control-Request-Headers",
            "authorization,content-type",
        ),
    ]
}

/// No header of the CORS family is present.
fn assert_no_cors(response: &chat_test_support::Response, what: &str) {
    let cors: Vec<_> = response
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{what}: CORS headers {cors:?}");
}

fn assert_allows(response: &chat_test_support::Response, origin: &str, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{what}: {response:?}"
    );
    assert!(
        response
            .header("vary")
            .is_some_and(|v| v.contains("Origin")),
        "{what}: no Vary: Origin in {response:?}"
    );
    // Bearer tokens, never cookies: credentials are not offered.
    assert_eq!(
        response.header("access-control-allow-credentials"),
        None,
        "{what}"
    );
}

async fn an_allowed_origin_gets_cors_headers_and_a_foreign_one_none(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| {
        c.allowed_origins = vec![APP.to_owned(), "https://other.example.org".to_owned()];
    })
    .await?;
    let amy = app.register("amy").await?;

    // The preflight of a PATCH with a bearer token and a JSON body.
    let answer = app
        .request_with_headers(
            Method::OPTIONS,
            "/api/v1/users/me",
            None,
            &preflight(APP, "PATCH"),
            None,
        )
        .await?;
    answer.expect_status(200)?;
    assert_allows(&answer, APP, "preflight");
    let methods = answer
        .header("access-control-allow-methods")
        .unwrap_or_default();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{method} not in {methods}");
    }
    let headers = answer
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(
        answer
            .header("access-control-max-age")
            .and_then(|age| age.parse::<u64>().ok())
            .is_some_and(|age| age > 0),
        "{answer:?}"
    );

    // The actual requests: a success and a problem are both readable by the page.
    let me = app
        .request_with_headers(
            Method::GET,
            "/api/v1/users/me",
            Some(&amy.access_token),
            &[("Origin", APP)],
            None,
        )
        .await?;
    me.expect_status(200)?;
    assert_allows(&me, APP, "GET");
    assert!(
        me.header("access-control-expose-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("x-request-id")),
        "{me:?}"
    );
    let unauthorized = app
        .request_with_headers(
            Method::GET,
            "/api/v1/users/me",
            None,
            &[("Origin", APP)],
            None,
        )
        .await?;
    unauthorized.expect_problem(401, "missing_token")?;
    assert_allows(&unauthorized, APP, "401");
    // actix's own 405, rewritten into problem+json, keeps them too.
    let wrong_method = app
        .request_with_headers(
            Method::DELETE,
            "/api/v1/auth/login",
            None,
            &[("Origin", APP)],
            None,
        )
        .await?;
    wrong_method.expect_problem(405, "method_not_allowed")?;
    assert_allows(&wrong_method, APP, "405");
    assert!(wrong_method.header("allow").is_some(), "{wrong_method:?}");

    // A foreign origin: its preflight is refused and nothing says it may read.
    let refused = app
        .request_with_headers(
            Method::OPTIONS,
            "/api/v1/users/me",
            None,
            &preflight(FOREIGN, "PATCH"),
            None,
        )
        .await?;
    refused.expect_problem(400, "cors_refused")?;
    assert_no_cors(&refused, "foreign preflight");
    let foreign = app
        .request_with_headers(
            Method::GET,
            "/api/v1/users/me",
            Some(&amy.access_token),
            &[("Origin", FOREIGN)],
            None,
        )
        .await?;
    // Non-browser clients that send an Origin are still served; the browser of a
    // foreign page is not allowed to read the answer.
    foreign.expect_status(200)?;
    assert_no_cors(&foreign, "foreign GET");
    // A method outside the list is refused at preflight.
    let trace = app
        .request_with_headers(
            Method::OPTIONS,
            "/api/v1/users/me",
            None,
            &preflight(APP, "TRACE"),
            None,
        )
        .await?;
    trace.expect_problem(400, "cors_refused")?;
    assert_eq!(trace.header("access-control-allow-origin"), None);
    app.shutdown().await;
    Ok(())
}

async fn without_allowed_origins_no_origin_gets_cors_headers(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    assert!(app.config.allowed_origins.is_empty());
    let refused = app
        .request_with_headers(
            Method::OPTIONS,
            "/api/v1/auth/login",
            None,
            &preflight(APP, "POST"),
            None,
        )
        .await?;
    refused.expect_problem(400, "cors_refused")?;
    assert_no_cors(&refused, "preflight");
    let login = app
        .request_with_headers(
            Method::POST,
            "/api/v1/auth/login",
            None,
            &[("Origin", APP)],
            Some((
                "application/json",
                json!({"username": "nobody", "password": "wrong password"})
                    .to_string()
                    .into_bytes(),
            )),
        )
        .await?;
    login.expect_problem(401, "invalid_credentials")?;
    assert_no_cors(&login, "POST");
    app.shutdown().await;
    Ok(())
}

async fn a_wildcard_allows_any_origin_by_echoing_it(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.allowed_origins = vec!["*".to_owned()]).await?;
    let answer = app
        .request_with_headers(
            Method::OPTIONS,
            "/api/v1/chats",
            None,
            &preflight(FOREIGN, "POST"),
            None,
        )
        .await?;
    answer.expect_status(200)?;
    assert_allows(&answer, FOREIGN, "preflight");
    let health = app
        .request_with_headers(Method::GET, "/healthz", None, &[("Origin", APP)], None)
        .await?;
    health.expect_status(200)?;
    assert_allows(&health, APP, "GET");
    app.shutdown().await;
    Ok(())
}

async fn every_answer_is_nosniff_and_html_has_a_content_security_policy(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let amy = app.register("amy").await?;
    let answers = [
        ("ok", app.get("/healthz", None).await?),
        (
            "json",
            app.get("/api/v1/users/me", Some(&amy.access_token)).await?,
        ),
        ("problem", app.get("/api/v1/users/me", None).await?),
        ("unknown route", app.get("/nothing/here", None).await?),
        (
            "wrong method",
            app.delete("/api/v1/auth/login", None).await?,
        ),
        ("openapi", app.get("/api/openapi.json", None).await?),
        ("metrics", app.get("/metrics", None).await?),
        ("script", app.get("/docs/swagger-ui-bundle.js", None).await?),
        ("redirect", app.get("/docs", None).await?),
        ("refused handshake", app.get("/ws", None).await?),
    ];
    for (what, answer) in &answers {
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{what}: {answer:?}"
        );
    }

    let page = app.get("/docs/", None).await?;
    page.expect_status(200)?;
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{page:?}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page
        .header("content-security-policy")
        .ok_or_else(|| anyhow::anyhow!("no CSP on {page:?}"))?;
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .map(str::to_owned)
    };
    assert_eq!(
        directive("default-src").as_deref(),
        Some("default-src 'none'")
    );
    assert_eq!(
        directive("script-src").as_deref(),
        Some("script-src 'self'")
    );
    assert_eq!(
        directive("frame-ancestors").as_deref(),
        Some("frame-ancestors 'none'")
    );
    assert!(
        directive("connect-src").is_some_and(|d| d.contains("'self'")),
        "Swagger UI fetches the document and tries requests: {csp}"
    );
    // `script-src 'self'` is enough for Swagger UI only because the page has no inline
    // script: every script is a file of ours.
    let scripts = page.text.matches("<script").count();
    assert!(scripts > 0, "{}", page.text);
    assert_eq!(
        page.text.matches("<script src=\"./").count(),
        scripts,
        "inline or foreign script in {}",
        page.text
    );
    // Only HTML gets the page policy.
    let document = &answers[5].1;
    assert_eq!(document.header("content-security-policy"), None);
    app.shutdown().await;
    Ok(())
}
