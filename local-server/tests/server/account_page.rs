//! The account deletion page (`GET /account/delete/`) in a real browser: Debian's `chromium`,
//! headless, driven through `chromedriver` (WebDriver) with fantoccini. `scripts/test` installs
//! both with apt-get; without them this test fails (a browser test that skips proves nothing).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::support::Server;

const STRONG: &str = "xk29!pLm#q";

/// An executable on the PATH (or Debian's place for it).
fn executable(name: &str, debian: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .chain([PathBuf::from(debian)])
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{name} is missing: the browser test needs Debian's chromium and chromium-driver \
             (scripts/test installs them: apt-get install chromium chromium-driver)"
        )
    })
}

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let binary = executable("chromedriver", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's status line once the page has shown an outcome (`done` or `error`).
async fn outcome(browser: &fantoccini::Client) -> (String, String) {
    let status = browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#status.done, #status.error"))
        .await
        .expect("the page shows an outcome");
    (status.attr("class").await.unwrap().unwrap_or_default(), status.text().await.unwrap())
}

async fn submit(browser: &fantoccini::Client, username: &str, password: &str) -> (String, String) {
    for (id, value) in [("username", username), ("password", password)] {
        let field = browser.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    // Forget the previous outcome, so the next one is this submission's.
    browser.execute("document.getElementById('status').className = '';", vec![]).await.unwrap();
    browser.find(Locator::Id("delete-button")).await.unwrap().click().await.unwrap();
    outcome(browser).await
}

#[tokio::test]
async fn the_page_deletes_an_account_in_a_browser_and_shows_a_wrong_password() {
    let chromium = executable("chromium", "/usr/bin/chromium");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/auth/registration/", server.base))
        .json(&json!({"username": "page-user", "password1": STRONG, "password2": STRONG}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless chromium");

    async {
        browser.goto(&format!("{}/account/delete/", server.base)).await.unwrap();
        assert_eq!(browser.title().await.unwrap(), "Delete your account");

        // A wrong password: the API's message, the account stays.
        let (class, text) = submit(&browser, "page-user", "not-the-password").await;
        assert_eq!((class.as_str(), text.as_str()), ("error", "Unable to log in with provided credentials."));
        assert!(browser.find(Locator::Id("delete-form")).await.unwrap().is_displayed().await.unwrap());

        // The right one: deleted, and the form is gone.
        let (class, text) = submit(&browser, "page-user", STRONG).await;
        assert_eq!((class.as_str(), text.as_str()), ("done", "Your account and its data have been deleted."));
        assert!(!browser.find(Locator::Id("delete-form")).await.unwrap().is_displayed().await.unwrap());
        if let Ok(path) = std::env::var("ACCOUNT_PAGE_SCREENSHOT") {
            std::fs::write(path, browser.screenshot().await.unwrap()).unwrap();
        }
    }
    .await;
    browser.close().await.unwrap();

    let r = http
        .post(format!("{}/api/auth/login/", server.base))
        .json(&json!({"username": "page-user", "password": STRONG}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "the account is gone");
}
