//! Tests in a real browser: Debian's headless Chromium, driven by playwright-core from Node
//! (`tests/browser/run-pages.mjs`), loads pages that the test serves from origins of its own and
//! that call a Tessera with `fetch`, as a frontend would.
//!
//! A test starts a [`PageServer`] with its pages (one origin, `http://127.0.0.1:<port>`, or
//! `localhost` for another site: [`PageServer::start_as`]), starts Tessera (usually with that
//! origin in `cors.allowed_origins`), then [`Chromium::visit`]s page URLs (made with
//! [`PageServer::url`], which passes Tessera's base URL as `?api=`). Each page
//! includes `/page.js` (`tests/browser/page.js`: `tessera.call`, `tessera.json`, `tessera.run`,
//! `tessera.submitForm`) and publishes a JSON result; the test asserts on it, and on the
//! [`Visit::exchanges`] (what the browser sent, forms posted to other origins included, and the
//! status each got). Pages visited in one `visit` share one browser context (cookies), as for a
//! person moving between pages.
//!
//! Needs `/usr/bin/chromium` (or `TESSERA_CHROMIUM`), `node` and `npm ci` done in
//! `tests/browser` (`.ci/run` sees to all three); without them a test skips, and under `CI=true`
//! fails.
mod cookie;
mod cors;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use poem::{
    Response, Route, Server,
    endpoint::make_sync,
    listener::{Acceptor, Listener, TcpListener},
    web::Html,
};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::oneshot;

/// What every test page includes as `/page.js`.
const PAGE_JS: &str = include_str!("../../browser/page.js");

/// A test page: `script` runs as a module after `/page.js`, so it can use `tessera.*` and
/// top-level `await`; it should end in `tessera.run(async () => ...)`.
pub fn page(title: &str, script: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n<script src=\"/page.js\"></script>\n\
         <script type=\"module\">\n{script}\n</script></head><body></body></html>\n"
    )
}

/// A static HTTP server for test pages: one origin, stopped when dropped.
pub struct PageServer {
    /// `http://127.0.0.1:<port>`, as the browser sends it in `Origin`.
    pub origin: String,
    _stop: oneshot::Sender<()>,
}

impl PageServer {
    /// Serves each `(path, html)` and `/page.js` on a free port of 127.0.0.1, as
    /// `http://127.0.0.1:<port>`.
    pub async fn start(pages: &[(&str, String)]) -> Self {
        Self::start_as("127.0.0.1", pages).await
    }

    /// The same, named `http://<host>:<port>` in its URLs: `"localhost"` (which Chromium maps to
    /// the loopback) makes a page on another site than Tessera's 127.0.0.1, where `SameSite`
    /// cookies are not sent; 127.0.0.1 on two ports is two origins but one site.
    pub async fn start_as(host: &str, pages: &[(&str, String)]) -> Self {
        let mut route = Route::new().at(
            "/page.js",
            make_sync(|_| {
                Response::builder()
                    .content_type("text/javascript; charset=utf-8")
                    .body(PAGE_JS)
            }),
        );
        for (path, html) in pages {
            let html = html.clone();
            route = route.at(*path, make_sync(move |_| Html(html.clone())));
        }
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("page server binds");
        let addr: SocketAddr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                route,
                async move {
                    let _ = stopped.await;
                },
                None,
            ),
        );
        Self {
            origin: format!("http://{host}:{}", addr.port()),
            _stop: stop,
        }
    }

    /// The URL of the page at `path`, with `api` (Tessera's base URL) and `params` in its query.
    pub fn url(&self, path: &str, api: &str, params: &[(&str, &str)]) -> String {
        let mut query = vec![("api", api)];
        query.extend_from_slice(params);
        Url::parse_with_params(&format!("{}{path}", self.origin), query)
            .expect("a page URL")
            .to_string()
    }
}

/// One visited page: what it published and what the browser said meanwhile.
#[derive(Debug, Deserialize)]
pub struct Visit {
    pub url: String,
    /// The page's `window.tesseraResult`; null if it never set one (see `errors`).
    pub result: serde_json::Value,
    /// Console lines, `"<level>: <text>"`, the browser's own included (a CORS refusal is one).
    pub console: Vec<String>,
    /// Uncaught page errors, and the runner's (a timeout waiting for the result).
    pub errors: Vec<String>,
    /// Requests that got no usable answer, `"<METHOD> <url>: <net::ERR_...>"`.
    pub failed_requests: Vec<String>,
    /// Every answered request of the visit (its frames and popups included), in the order the
    /// answers came; CORS preflights are not listed.
    pub exchanges: Vec<Exchange>,
}

/// A request the browser sent and the status it got, as the network saw it (also requests
/// whose answer the page may not read, such as a form posted to another site).
#[derive(Debug, Deserialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// The `Origin` header sent, if any; None also when the headers sent are unknown.
    pub origin: Option<String>,
    /// The names of the cookies sent; None when Chromium did not report the headers it sent
    /// (it does not for a `no-cors` fetch).
    pub cookies: Option<Vec<String>>,
}

impl Visit {
    /// The exchanges with `url` (without its query).
    pub fn exchanges_with(&self, url: &str) -> Vec<&Exchange> {
        self.exchanges
            .iter()
            .filter(|e| e.url.split('?').next() == Some(url))
            .collect()
    }

    /// The console lines in which the browser says CORS blocked a call from this page.
    pub fn cors_refusals(&self) -> Vec<&str> {
        self.console
            .iter()
            .map(String::as_str)
            .filter(|line| line.contains("has been blocked by CORS policy"))
            .collect()
    }
}

#[derive(Deserialize)]
struct RunOutput {
    pages: Vec<Visit>,
}

/// Debian's Chromium with Node and playwright-core to drive it.
pub struct Chromium {
    executable: PathBuf,
    browser_dir: PathBuf,
}

impl Chromium {
    /// The browser, or `None` after [`crate::helpers::skip`] (which fails under `CI=true`)
    /// when Chromium, Node or `tests/browser/node_modules` is missing.
    pub fn find(test: &str) -> Option<Self> {
        let executable = std::env::var_os("TESSERA_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let node = Command::new("node").arg("--version").output();
        let missing = if !executable.exists() {
            Some(format!(
                "no Chromium at {} (apt-get install chromium, or set TESSERA_CHROMIUM)",
                executable.display()
            ))
        } else if !node.is_ok_and(|out| out.status.success()) {
            Some("no node on PATH".to_owned())
        } else if !browser_dir
            .join("node_modules/playwright-core/package.json")
            .exists()
        {
            Some("no playwright-core (run `npm ci` in tests/browser)".to_owned())
        } else {
            None
        };
        match missing {
            Some(reason) => {
                crate::helpers::skip(test, &reason);
                None
            }
            None => Some(Self {
                executable,
                browser_dir,
            }),
        }
    }

    /// Opens `urls` in order in one fresh headless browser and returns what each page published.
    pub async fn visit(&self, urls: &[String]) -> Vec<Visit> {
        let mut command = Command::new("node");
        command
            .current_dir(&self.browser_dir)
            .arg("run-pages.mjs")
            .args(urls)
            .env("TESSERA_CHROMIUM", &self.executable);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "run-pages.mjs failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let run: RunOutput = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("run-pages.mjs printed no JSON ({e}): {stdout}"));
        let visited: Vec<&str> = run.pages.iter().map(|v| v.url.as_str()).collect();
        assert_eq!(visited, urls, "run-pages.mjs visited other pages");
        run.pages
    }
}
