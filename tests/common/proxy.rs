//! A small TCP proxy for fault tests: forwards connections from its own port on
//! 127.0.0.1 to a target that can change (a restarted node), cuts every open connection
//! on demand, and can slow the upward direction (client to target) to a byte rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Bytes per second from client to target; 0 for no limit.
    rate: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(Some(target)));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let rate = Arc::new(AtomicU64::new(0));
        let (t, c, r) = (target.clone(), connections.clone(), rate.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let Some(to) = *t.lock().unwrap() else {
                    drop(inbound);
                    continue;
                };
                let rate = r.clone();
                let task = tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.split();
                    let (mut from_target, mut to_target) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 4096];
                        loop {
                            let n = match from_client.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let limit = rate.load(Ordering::Relaxed);
                            if limit > 0 {
                                tokio::time::sleep(Duration::from_secs_f64(
                                    n as f64 / limit as f64,
                                ))
                                .await;
                            }
                            if to_target.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_target.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut from_target, &mut to_client).await;
                    };
                    tokio::join!(up, down);
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            target,
            connections,
            rate,
            accept,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Where new connections go; `None` refuses them (the parent looks down).
    pub fn set_target(&self, target: Option<SocketAddr>) {
        *self.target.lock().unwrap() = target;
    }

    /// Limits client-to-target bytes per second (0: no limit), on open connections too.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Drops every open connection mid-stream.
    pub fn cut(&self) {
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
