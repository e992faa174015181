//! The web client's files as the server serves them: the page at `/` with its
//! Content-Security-Policy, every file it loads (and every module those import) with
//! the right type and caching, nothing from another origin, unknown files as problems,
//! and the other routes untouched. (Serving embedded files touches no storage: these
//! run in the embedded mode only.) The page itself is driven in a real browser by
//! `web_browser`.

use std::collections::BTreeSet;

use actix_web::http::Method;
use chat_test_support::{Backend, TestApp};

/// The values of every `attr="…"` in `text`.
fn attribute_values<'a>(text: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    text.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The specifiers of a module's static imports (`… from "./x.js"`, `import "./y.js"`).
fn imports(module: &str) -> Vec<&str> {
    module
        .match_indices("from \"")
        .chain(module.match_indices("import \""))
        .filter_map(|(at, matched)| {
            let rest = &module[at + matched.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Resolves a relative module specifier against the module's URL path.
fn resolve(base: &str, specifier: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        specifier.starts_with("./") || specifier.starts_with("../"),
        "{base} imports {specifier:?}: only relative imports of our own files"
    );
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for segment in specifier.split('/') {
        match segment {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

#[actix_web::test]
async fn the_page_is_served_at_the_root_with_a_content_security_policy() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let page = app.get("/", None).await?;
    page.expect_status(200)?;
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(chat_api::HTML_CSP)
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page.header("etag").unwrap_or_default().to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag:?}");
    assert!(page.text.contains("<div id=\"app\""), "{}", page.text);

    // Revalidation: the same page answers 304 without a body.
    let again = app
        .request_with_headers(Method::GET, "/", None, &[("If-None-Match", &etag)], None)
        .await?;
    again.expect_status(304)?;
    assert!(again.text.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let head = app.request(Method::HEAD, "/", None, None).await?;
    head.expect_status(200)?;
    assert!(head.text.is_empty());
    app.request(Method::POST, "/", None, None)
        .await?
        .expect_problem(405, "method_not_allowed")?;
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn the_page_loads_only_its_own_files_and_every_one_is_served_typed_and_cached()
-> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let page = app.get("/", None).await?;
    page.expect_status(200)?;
    let html = &page.text;
    // Nothing from another origin: no CDN, no absolute or protocol-relative URL.
    for scheme in ["http:", "https:", "//"] {
        for url in attribute_values(html, "href")
            .into_iter()
            .chain(attribute_values(html, "src"))
        {
            assert!(!url.starts_with(scheme), "external URL {url}");
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    // No inline script or handler: the CSP would block them.
    assert!(!html.contains("<script>") && !html.contains("onload="));

    let mut to_fetch: Vec<String> = attribute_values(html, "href")
        .into_iter()
        .chain(attribute_values(html, "src"))
        .map(str::to_owned)
        .collect();
    assert!(
        to_fetch.iter().any(|u| u.ends_with("/js/main.js"))
            && to_fetch.iter().any(|u| u.ends_with(".css"))
    );
    let mut seen = BTreeSet::new();
    while let Some(url) = to_fetch.pop() {
        if !seen.insert(url.clone()) {
            continue;
        }
        assert!(url.starts_with("/app/"), "{url}");
        let file = app.get(&url, None).await?;
        file.expect_status(200)?;
        let expected = match url.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => anyhow::bail!("unexpected file {url} ({other:?})"),
        };
        assert_eq!(file.header("content-type"), Some(expected), "{url}");
        assert_eq!(
            file.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        let etag = file.header("etag").unwrap_or_default().to_owned();
        app.request_with_headers(Method::GET, &url, None, &[("If-None-Match", &etag)], None)
            .await?
            .expect_status(304)?;
        if url.ends_with(".js") {
            assert!(
                !file.text.contains("http://") && !file.text.contains("https://"),
                "{url} names another origin"
            );
            for specifier in imports(&file.text) {
                to_fetch.push(resolve(&url, specifier)?);
            }
        }
    }
    // Every module of the client is reachable from the page (none is dead weight).
    let modules = seen.iter().filter(|u| u.ends_with(".js")).count();
    assert!(modules >= 10, "{seen:?}");
    let preloaded = attribute_values(html, "href")
        .into_iter()
        .filter(|u| u.ends_with(".js"))
        .count();
    assert_eq!(preloaded, modules, "every module is preloaded: {seen:?}");
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn unknown_files_are_problems_and_other_routes_are_not_shadowed() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let page = app.get("/", None).await?;
    let main = attribute_values(&page.text, "src")
        .into_iter()
        .find(|u| u.ends_with("/js/main.js"))
        .ok_or_else(|| anyhow::anyhow!("no main.js in {}", page.text))?
        .to_owned();
    let version_dir = main.trim_end_matches("js/main.js");
    for missing in [
        format!("{version_dir}js/nope.js"),
        format!("{version_dir}index.html"),
        format!("{version_dir}../../etc/passwd"),
        "/app/".to_owned(),
        "/app/js/main.js".to_owned(),
        "/index.html".to_owned(),
    ] {
        app.get(&missing, None)
            .await?
            .expect_problem(404, "not_found")
            .map_err(|e| anyhow::anyhow!("{missing}: {e}"))?;
    }
    // A page cached before a deploy asks for the files under its old version: they are
    // served (the page keeps working) but must be revalidated, never cached for good.
    let old = app.get("/app/000000000000/js/main.js", None).await?;
    old.expect_status(200)?;
    assert_eq!(old.header("cache-control"), Some("no-cache"));

    // The rest of the server is where it was.
    app.get("/healthz", None).await?.expect_status(200)?;
    app.get("/api/v1/nope", None)
        .await?
        .expect_problem(404, "not_found")?;
    app.get("/api/v1/users/me", None)
        .await?
        .expect_problem(401, "missing_token")?;
    let docs = app.get("/docs/", None).await?;
    docs.expect_status(200)?;
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    app.get("/api/openapi.json", None)
        .await?
        .expect_status(200)?;
    app.get("/metrics", None).await?.expect_status(200)?;
    // A WebSocket handshake without credentials is still refused by the WebSocket layer.
    app.get("/ws", None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}
