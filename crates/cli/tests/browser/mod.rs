//! A headless Chromium driven over WebDriver (chromedriver), for the tests
//! of the web page.
//!
//! Needs `/usr/bin/chromedriver` (or `CHROMEDRIVER`) and Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM`): Debian's `chromium-driver` and
//! `chromium`, which `scripts/test` installs where they are missing.

#![allow(dead_code, reason = "each test file uses what it needs")]

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long the page may take to show what is waited for, and the longest
/// one WebDriver command may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// The result of a WebDriver command, which fails the test naming `what`
/// when it fails or takes over [`DEADLINE`].
pub(crate) async fn within<T, E: std::fmt::Debug>(
    what: &str,
    command: impl Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(DEADLINE, command).await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!("{what} failed: {error:?}"),
        Err(_) => panic!("{what} took over {DEADLINE:?}"),
    }
}

/// A chromedriver process in a process group of its own (so that the
/// Chromium it starts can be stopped with it) and a session in it.
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session in a window of 1280 by 1000 pixels.
    pub(crate) async fn start() -> Browser {
        Browser::sized(1280, 1000).await
    }

    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session in a window of `width` by `height` pixels.
    pub(crate) async fn sized(width: u32, height: u32) -> Browser {
        let path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        let mut driver = Command::new(&path)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {path} (apt-get install chromium-driver): {error}"));
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("chromedriver says where it listens").unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let mut capabilities = serde_json::Map::new();
        let mut options = json!({"binary": chromium,
               "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                        &format!("--window-size={width},{height}"), "--no-first-run", "--disable-extensions"]});
        // Chromium's windows are at least 500 pixels wide: a narrower one is a phone's screen, emulated.
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
        }
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver = format!("http://127.0.0.1:{port}");
        // Dropped (and so stopped) if the session cannot be had.
        let mut browser = Browser { client: None, driver };
        browser.client = Some(within("a Chromium session", builder.connect(&webdriver)).await);
        browser
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub(crate) async fn close(mut self) {
        within("closing the session", self.client().clone().close()).await;
        self.stop_driver();
    }

    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    /// Kills chromedriver and whatever is left of the Chromium it started: its own process group.
    fn stop_driver(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            let group = format!("-{}", self.driver.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.driver.wait();
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        within(&format!("opening {url}"), self.client().goto(url)).await;
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        within(&format!("finding {css}"), self.client().find(Locator::Css(css))).await
    }

    pub(crate) async fn click(&self, css: &str) {
        within(&format!("clicking {css}"), self.find(css).await.click()).await;
    }

    /// Replaces the text of the field `css` with `text`.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        within(&format!("clearing {css}"), field.clear()).await;
        within(&format!("typing into {css}"), field.send_keys(text)).await;
    }

    pub(crate) async fn select(&self, css: &str, value: &str) {
        within(&format!("choosing {value} in {css}"), self.find(css).await.select_by_value(value)).await;
    }

    /// Runs `script` (the body of a function) in the page.
    pub(crate) async fn run(&self, script: &str) -> Value {
        within(&format!("running {script}"), self.client().execute(script, Vec::new())).await
    }

    /// Polls `script` until it returns something other than null, false or
    /// "", and returns that; fails after [`DEADLINE`] with what the page shows.
    pub(crate) async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.run(script).await;
            if !matches!(&value, Value::Null | Value::Bool(false)) && value != json!("") {
                return value;
            }
            if Instant::now() > deadline {
                let shown = self.run("return document.body.innerText").await;
                panic!(
                    "the page never showed {what} in {DEADLINE:?}; it shows:\n{}",
                    shown.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of `css` once it has some.
    pub(crate) async fn text(&self, what: &str, css: &str) -> String {
        let script = format!("const e = document.querySelector({css:?}); return e && e.textContent.trim()");
        self.until(what, &script).await.as_str().unwrap().to_owned()
    }

    /// Signs in with `token` and waits for the runs.
    pub(crate) async fn sign_in(&self, token: &str) {
        self.fill("#token", token).await;
        self.click("#login-button").await;
        self.until("the runs", "return !document.getElementById('app').hidden").await;
    }

    /// The nodes of the answer forms, in order, once the page shows `count` of them.
    pub(crate) async fn answer_forms(&self, count: usize) -> Value {
        let script = format!(
            "const nodes = [...document.querySelectorAll('#answers:not([hidden]) form')] \
             .map(f => f.dataset.node); return nodes.length === {count} && nodes"
        );
        self.until(&format!("{count} answer form(s)"), &script).await
    }

    /// The sequence numbers of the entries in the thread, in order.
    pub(crate) async fn thread_seqs(&self) -> Vec<u64> {
        let seqs = self
            .run("return [...document.querySelectorAll('#thread [data-seq]')].map(e => +e.dataset.seq)")
            .await;
        serde_json::from_value(seqs).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop_driver();
    }
}
