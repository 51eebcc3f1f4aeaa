//! A real browser for the console's end-to-end tests: Debian's headless
//! Chromium driven through ChromeDriver (WebDriver) with fantoccini. Each
//! test gets its own ChromeDriver (on a port it picks itself) and a fresh
//! profile; screenshots go to `$IMI_SCREENSHOTS` (default
//! `$CARGO_TARGET_DIR/screenshots`), one folder per test; every page can be
//! checked with axe-core (the test command installs it; `scripts/ensure-browser.sh`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A headless Chromium with its ChromeDriver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
    base: String,
    shots: PathBuf,
    taken: usize,
}

fn screenshots_root() -> PathBuf {
    if let Ok(dir) = std::env::var("IMI_SCREENSHOTS") {
        return dir.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// axe-core's script, installed by `scripts/ensure-browser.sh`.
fn axe_script() -> String {
    let path = std::env::var("IMI_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/imi-hub-browser/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {} ({e}); run scripts/ensure-browser.sh",
            path.display()
        )
    })
}

impl Browser {
    /// Starts ChromeDriver and a browser; `test` names the screenshots'
    /// folder; `base` is the hub's HTTP address.
    pub async fn start(test: &str, base: &str) -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (scripts/ensure-browser.sh installs it)");
        let stdout = driver.stdout.take().expect("chromedriver's output");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver tells its port");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = std::env::temp_dir().join(format!("imi-chromium-{}", uuid::Uuid::new_v4()));
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        let shots = screenshots_root().join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("screenshots folder");
        Browser {
            client,
            driver,
            profile,
            base: base.to_owned(),
            shots,
            taken: 0,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("page loads");
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        format!(
            "{}{}",
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        )
    }

    /// The page's visible text (empty while a new page is loading: after
    /// a form is submitted there is a moment with no body).
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's text contains `needle` (without reloading).
    pub async fn wait_for_text(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "`{needle}` did not appear within {within:?}; the page shows:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .select_by_value(value)
            .await
            .expect("option");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("click");
    }

    /// Logs in through the login form.
    pub async fn log_in(&self, name: &str, password: &str) {
        self.goto("/console/login").await;
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click("form.login button").await;
        self.wait_for_text("Log out", Duration::from_secs(10)).await;
    }

    /// Saves a screenshot of the whole page as `<n>-<name>.png`.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        // The whole page, not just the window.
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(1000)
            .clamp(600, 6000);
        let _ = self.client.set_window_size(1280, height as u32).await;
        let png = self.client.screenshot().await.expect("screenshot");
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).expect("screenshot written");
        println!("screenshot: {}", path.display());
        path
    }

    /// Runs axe-core on the page; fails on a serious or critical violation
    /// (WCAG 2 A and AA rules).
    pub async fn assert_accessible(&self, page: &str) {
        self.client
            .execute(&axe_script(), vec![])
            .await
            .expect("axe-core loads");
        let result: Value = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                    .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
                    .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        let serious: Vec<&Value> = result
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            serious.is_empty(),
            "{page}: accessibility violations: {}",
            serde_json::to_string_pretty(&serious).unwrap_or_default()
        );
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
