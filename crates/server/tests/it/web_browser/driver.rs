//! A headless Chromium driven over WebDriver: Debian's `chromium` and `chromium-driver`
//! (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `.ci/run` installs them). Nothing is
//! downloaded. Every wait polls a condition in the page until it holds or a deadline
//! passes — no fixed sleeps.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a condition may take to come true (generous: the browsers share two cores
/// with the rest of the suite; a condition that holds returns at once).
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn binary(env: &str, candidates: &[&str], package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{package} is not installed (apt-get install --no-install-recommends chromium \
                 chromium-driver; .ci/run does it), or set {env}"
            )
        })
}

/// A chromedriver on a free local port, in a process group of its own with the
/// browsers it starts; the whole group is ended on drop (also when a test fails
/// before closing its sessions: a browser outlives a killed chromedriver).
pub struct Chromedriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    /// The browsers' profiles (one folder each), removed on drop.
    profiles: PathBuf,
}

impl Chromedriver {
    pub fn start() -> anyhow::Result<Self> {
        let driver = binary(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromium-driver",
        )?;
        let chromium = binary(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
            "chromium",
        )?;
        let port = chat_test_support::free_port()?;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let driver = Chromedriver {
            child,
            port,
            chromium,
            profiles: std::env::temp_dir().join(format!(
                "chat-browser-{}",
                chat_test_support::random_suffix()
            )),
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(POLL);
        }
        Ok(driver)
    }

    /// A new browser (its own profile `name`, so its own storage) showing `url`.
    pub async fn open(&self, url: &str, name: &str) -> anyhow::Result<Page> {
        let profile = self.profiles.join(name);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    // Chromium's sandbox needs user namespaces, which a root process in
                    // a container usually lacks. The browser only ever loads our own
                    // page from 127.0.0.1, so the sandbox protects nothing here.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--disable-extensions",
                    "--no-first-run",
                    "--window-size=1100,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await?;
        client.goto(url).await?;
        Ok(Page { client })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group is ours: chromedriver (its id is the group's) and the browsers it
        // started, none of which leave it.
        let group = format!("-{}", self.child.id());
        let signal = |signal: &str| {
            Command::new("kill")
                .args([signal, "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        signal("-TERM");
        // The browsers write their profiles until they are gone: wait for the group to
        // empty (`kill -0` fails then; chromedriver is reaped meanwhile, a zombie
        // would still count) before removing them.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let _ = self.child.try_wait();
            if !signal("-0") || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// chromedriver's log of the page's console (`goog:loggingPrefs`), emptied by reading.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// One browser window.
pub struct Page {
    pub client: Client,
}

impl Page {
    /// Runs `script` (a function body: `return …`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Waits until the JavaScript expression `condition` is truthy in the page.
    pub async fn wait_until(&self, condition: &str, what: &str) -> anyhow::Result<()> {
        let script = format!("return Boolean({condition});");
        let deadline = Instant::now() + WAIT;
        loop {
            if self.eval(&script, vec![]).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text = self
                    .eval("return document.body.innerText;", vec![])
                    .await
                    .unwrap_or_default();
                anyhow::bail!(
                    "timed out waiting until {what} ({condition}); the page says:\n{text}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` to be shown.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.wait_until(
            &format!(
                "(e => e && e.getClientRects().length > 0)(document.querySelector({}))",
                json!(css)
            ),
            &format!("{css} is shown"),
        )
        .await?;
        Ok(self.client.find(Locator::Css(css)).await?)
    }

    /// Waits until some element matching `css` contains `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.wait_until(
            &format!(
                "[...document.querySelectorAll({})].some(e => e.textContent.includes({}))",
                json!(css),
                json!(text)
            ),
            &format!("{css} shows {text:?}"),
        )
        .await
    }

    /// Clicks the element matching `css` once it is shown. Lists redraw when events
    /// arrive: an element replaced between finding and clicking is found again.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.retry_stale(css, |element| async move { element.click().await })
            .await
    }

    /// Types into a field (emptied first).
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.retry_stale(css, |field| async move {
            field.clear().await?;
            field.send_keys(text).await
        })
        .await
    }

    /// Picks `value` in the select `css` (found again if a redraw replaced it).
    pub async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.retry_stale(css, |element| async move {
            element.select_by_value(value).await
        })
        .await
    }

    async fn retry_stale<F, Fut>(&self, css: &str, action: F) -> anyhow::Result<()>
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            let element = self.wait_for(css).await?;
            match action(element).await {
                Err(err)
                    if err.to_string().contains("stale element") && Instant::now() < deadline => {}
                other => return Ok(other?),
            }
        }
    }

    /// The text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let value = self
            .eval(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
                vec![json!(css)],
            )
            .await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Console messages at level SEVERE since the last call (errors, failed loads,
    /// uncaught exceptions and rejections).
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        let log = self.client.issue_cmd(BrowserLog).await?;
        Ok(log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Saves a PNG of the page as `<name>.png` in `$CHAT_BROWSER_SCREENSHOTS`, when set
    /// (to look at the page; the test asserts nothing about pictures).
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        if let Some(dir) = std::env::var_os("CHAT_BROWSER_SCREENSHOTS") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join(format!("{name}.png")),
                self.client.screenshot().await?,
            )?;
        }
        Ok(())
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}
