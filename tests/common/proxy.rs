//! A small TCP proxy for fault tests: forwards connections from its own port on
//! 127.0.0.1 to a target that can change (a restarted node), and cuts every open
//! connection on demand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(Some(target)));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (t, c) = (target.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let Some(to) = *t.lock().unwrap() else {
                    drop(inbound);
                    continue;
                };
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            target,
            connections,
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
