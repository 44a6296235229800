//! A tiny SMTP server on loopback that keeps what it receives, for the email flows.
use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

#[derive(Clone, Default)]
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Self {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let messages = sink.messages.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let messages = messages.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let mut message = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    message.push_str(&l);
                                    message.push('\n');
                                }
                                messages.lock().unwrap().push(message);
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        sink
    }

    /// Waits for the `n`th message (1-based) and returns it with quoted-printable undone.
    pub async fn message(&self, n: usize) -> String {
        for _ in 0..100 {
            if let Some(m) = self.messages.lock().unwrap().get(n - 1) {
                return unquote(m);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no message #{n} arrived");
    }

    /// The `uid` and `token` of the link in the `n`th message, for a route ending `/{uid}/{token}`.
    pub async fn link(&self, n: usize, route: &str) -> (String, String) {
        let message = self.message(n).await;
        let start = message
            .find(route)
            .unwrap_or_else(|| panic!("no {route} link in {message}"))
            + route.len();
        let rest: String = message[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
            .collect();
        let mut parts = rest.split('/');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    }
}

/// Undoes quoted-printable soft breaks and `=XX` escapes (lettre encodes long lines so).
fn unquote(message: &str) -> String {
    let joined = message.replace("=\n", "");
    let mut out = String::new();
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '=' {
            let hex: String = chars.clone().take(2).collect();
            if hex.len() == 2
                && hex
                    .chars()
                    .all(|h| h.is_ascii_hexdigit() && !h.is_ascii_lowercase())
            {
                out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                chars.next();
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}
