//! Bounds that `tls::incoming` keeps per peer and per connection, beyond its global caps:
//!
//! * `PerIp`: connections still handshaking and open at once from one source address
//!   (an IPv6 peer counts by its /64), so one host cannot take every handshake slot
//!   (a slowloris before TLS) or every connection permit (idle HTTP/2 connections).
//! * `Activity` and `CountStreams`: how many calls (HTTP/2 streams) a connection has
//!   open, so `tls::Guarded` can close a connection that has had none for
//!   `[connections] idle_secs`.
//! * `LogThrottle`: the first few warnings of each kind per window, then one line with
//!   the count of those not written, so a peer sending garbage cannot fill the log disk.
//!
//! Every count is held by an RAII guard (`IpSlot`, `StreamGuard`) and given back on drop.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tonic::codegen::http;

/// The address a per-peer cap counts by: an IPv4 address (also when mapped into IPv6),
/// or the /64 network of an IPv6 address, which one host usually holds whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey(IpAddr);

impl PeerKey {
    pub fn of(ip: IpAddr) -> PeerKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & !((1u128 << 64) - 1);
                PeerKey(IpAddr::V6(Ipv6Addr::from(net)))
            }
            v4 => PeerKey(v4),
        }
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    handshakes: usize,
    connections: usize,
}

/// Which per-peer cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCap {
    Handshakes,
    Connections,
}

impl PeerCap {
    pub fn key(self) -> &'static str {
        match self {
            PeerCap::Handshakes => "connections.max_handshakes_per_ip",
            PeerCap::Connections => "connections.max_connections_per_ip",
        }
    }
}

/// Connections per source address. The map holds only addresses with a connection open,
/// so it is bounded by the global connection cap.
#[derive(Debug)]
pub struct PerIp {
    max_handshakes: usize,
    max_connections: usize,
    counts: Mutex<HashMap<PeerKey, Counts>>,
}

impl PerIp {
    pub fn new(max_handshakes: usize, max_connections: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max_handshakes: max_handshakes.max(1),
            max_connections: max_connections.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, counted as handshaking until
    /// `IpSlot::handshake_done`; the cap it would exceed otherwise.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, PeerCap> {
        let key = PeerKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let c = counts.entry(key).or_default();
        if c.connections >= self.max_connections {
            return Err(PeerCap::Connections);
        }
        if c.handshakes >= self.max_handshakes {
            return Err(PeerCap::Handshakes);
        }
        c.connections += 1;
        c.handshakes += 1;
        Ok(IpSlot {
            per_ip: self.clone(),
            key,
            handshaking: true,
        })
    }

    /// Addresses with a connection open (for tests and the log).
    pub fn peers(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn release(&self, key: PeerKey, handshaking: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get_mut(&key) {
            if handshaking {
                c.handshakes = c.handshakes.saturating_sub(1);
            }
            c.connections = c.connections.saturating_sub(1);
            if c.connections == 0 && c.handshakes == 0 {
                counts.remove(&key);
            }
        }
    }

    fn handshake_done(&self, key: PeerKey) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get_mut(&key) {
            c.handshakes = c.handshakes.saturating_sub(1);
        }
    }
}

/// One connection's place in its address's counts; given back when dropped.
#[derive(Debug)]
pub struct IpSlot {
    per_ip: Arc<PerIp>,
    key: PeerKey,
    handshaking: bool,
}

impl IpSlot {
    /// The handshake ended: the connection now counts only as open.
    pub fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.per_ip.handshake_done(self.key);
        }
    }

    pub fn peer(&self) -> PeerKey {
        self.key
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.per_ip.release(self.key, self.handshaking);
    }
}

/// The calls open on one connection, shared between its `Guarded` stream (which closes
/// it after a time with none) and the `CountStreams` layer (which counts them).
#[derive(Debug, Default)]
pub struct Activity {
    open: AtomicUsize,
    /// Changes whenever a call opens or ends, so an idle timer armed before is rearmed.
    epoch: AtomicU64,
    /// The connection's reader, woken when its last call ends so it arms the idle timer.
    waker: Mutex<Option<Waker>>,
}

impl Activity {
    /// Calls open now, and the epoch.
    pub fn snapshot(&self) -> (usize, u64) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        (self.open.load(Ordering::SeqCst), epoch)
    }

    /// Wakes `waker` when the last open call ends.
    pub fn wake_when_idle(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Counts a call as open until the guard is dropped.
    pub fn open(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }
}

/// One open call; ends it on drop.
#[derive(Debug)]
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            let waker = self
                .0
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// A layer around the server that counts each call as open on its connection (found in
/// the request's `tls::ConnInfo`) from the request until the response body is done or
/// dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountStreams;

impl<S> tower::Layer<S> for CountStreams {
    type Service = CountStreamsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountStreamsService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct CountStreamsService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for CountStreamsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = req
            .extensions()
            .get::<super::tls::ConnInfo>()
            .map(|info| info.activity.open());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(match guard {
                Some(guard) => response.map(|body| {
                    tonic::body::Body::new(Counted {
                        inner: body,
                        _guard: guard,
                    })
                }),
                None => response,
            })
        })
    }
}

/// A response body that keeps its call counted as open until it is dropped.
struct Counted {
    inner: tonic::body::Body,
    _guard: StreamGuard,
}

impl http_body::Body for Counted {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Warnings let through per kind and window before they are counted instead.
pub const LOG_BURST: u32 = 10;
/// The window `LOG_BURST` applies to.
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

/// What to do with one warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; before it, say how many of its kind were not written in the last window.
    Log { suppressed: u64 },
    /// Count it only.
    Suppress,
}

#[derive(Debug)]
struct Window {
    start: tokio::time::Instant,
    logged: u32,
    suppressed: u64,
}

/// At most `LOG_BURST` warnings of each kind (a `&'static str`, so the map is bounded)
/// per `LOG_WINDOW`; the count of the rest is reported with the first one after.
#[derive(Debug, Default)]
pub struct LogThrottle {
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl LogThrottle {
    pub fn check(&self, kind: &'static str) -> Verdict {
        let now = tokio::time::Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = windows.entry(kind).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now >= w.start + LOG_WINDOW {
            let suppressed = std::mem::take(&mut w.suppressed);
            w.start = now;
            w.logged = 1;
            return Verdict::Log { suppressed };
        }
        if w.logged < LOG_BURST {
            w.logged += 1;
            return Verdict::Log { suppressed: 0 };
        }
        w.suppressed += 1;
        Verdict::Suppress
    }

    /// `check`, writing the summary line when there is one; whether to write the warning.
    pub fn allow(&self, kind: &'static str) -> bool {
        match self.check(kind) {
            Verdict::Log { suppressed: 0 } => true,
            Verdict::Log { suppressed } => {
                tracing::warn!(
                    kind,
                    suppressed,
                    window_secs = LOG_WINDOW.as_secs(),
                    "connection warnings of this kind not written in the last window (throttled)"
                );
                true
            }
            Verdict::Suppress => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_caps_handshakes_and_connections_and_gives_slots_back() {
        let per_ip = PerIp::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut one = per_ip.admit(a).unwrap();
        let mut two = per_ip.admit(a).unwrap();
        assert_eq!(per_ip.admit(a).unwrap_err(), PeerCap::Handshakes);
        // Another address is not held up.
        let other = per_ip.admit(b).unwrap();
        one.handshake_done();
        one.handshake_done();
        let three = per_ip.admit(a).unwrap();
        // Three open (two still handshaking): the connection cap applies.
        assert_eq!(per_ip.admit(a).unwrap_err(), PeerCap::Connections);
        two.handshake_done();
        drop(two);
        let four = per_ip.admit(a).unwrap();
        assert_eq!(per_ip.admit(a).unwrap_err(), PeerCap::Connections);
        // Two open, both handshaking: the handshake cap applies.
        drop(one);
        assert_eq!(per_ip.admit(a).unwrap_err(), PeerCap::Handshakes);
        drop((three, four, other));
        assert_eq!(per_ip.peers(), 0, "every slot is given back");
    }

    #[test]
    fn an_ipv6_peer_counts_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let x = PeerKey::of("2001:db8:1:2::1".parse().unwrap());
        let y = PeerKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let z = PeerKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(
            PeerKey::of("::ffff:10.0.0.1".parse().unwrap()),
            PeerKey::of("10.0.0.1".parse().unwrap())
        );
        assert_eq!(x.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_stream_guard_counts_and_wakes_the_reader_when_the_last_call_ends() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let activity = Arc::new(Activity::default());
        let (open, e0) = activity.snapshot();
        assert_eq!(open, 0);
        let g1 = activity.open();
        let g2 = activity.open();
        let flag = Arc::new(Flag(false.into()));
        activity.wake_when_idle(&Waker::from(flag.clone()));
        drop(g1);
        assert!(!flag.0.load(Ordering::SeqCst));
        drop(g2);
        assert!(flag.0.load(Ordering::SeqCst));
        let (open, e1) = activity.snapshot();
        assert_eq!(open, 0);
        assert_ne!(e0, e1, "a call that came and went rearms the idle timer");
    }

    #[tokio::test(start_paused = true)]
    async fn warnings_are_throttled_per_kind_and_the_rest_counted() {
        let t = LogThrottle::default();
        for _ in 0..LOG_BURST {
            assert_eq!(t.check("expired"), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(t.check("expired"), Verdict::Suppress);
        }
        // Another kind has its own allowance.
        assert_eq!(t.check("revoked"), Verdict::Log { suppressed: 0 });
        tokio::time::advance(LOG_WINDOW).await;
        assert_eq!(t.check("expired"), Verdict::Log { suppressed: 5 });
        assert_eq!(t.check("expired"), Verdict::Log { suppressed: 0 });
    }
}
