//! The codec every `credit.v1` service and client uses (set in `build.rs`): prost's, except
//! that a message that does not decode is the sender's fault. tonic-prost maps every
//! `prost::DecodeError` (bad wire type, truncated field, a string that is not UTF-8) to
//! `Internal`, which tells a caller the node is broken and tells the operator nothing.
//! Here it is `InvalidArgument`, naming the message that could not be read (R-NODE-2).
//!
//! A unary or server-streaming request that does not decode never reaches its handler;
//! `LogUndecodable`, a layer around the whole server, writes its usage entry (the caller
//! from the certificate, rule R-NODE-2). A bad message inside a client stream (a push
//! batch, a sync batch) reaches the handler as an error, and the handler logs it.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::domain::usage::Action;
use crate::identity::tls::{ConnInfo, ServerTls, authenticate_peer};
use crate::rpc::gate::Gate;
use crate::rpc::refusal::Refusal;

/// The words every undecodable-message refusal carries, for the caller.
const NOT_PROTOBUF: &str = "message is not valid protobuf";
/// Largest gRPC message a node accepts (a full `PushBatch` of long records fits).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// The response header that marks an undecodable-message refusal for `LogUndecodable`.
/// A status message can echo the caller's own text, so it is no sign of where a refusal
/// came from; this header is set only by `malformed`, and removed before the response
/// leaves the node.
pub const UNDECODABLE_HEADER: &str = "x-credit-undecodable";

/// `tonic_prost::ProstCodec` with decode errors as `InvalidArgument`.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstDecoder::default())
    }
}

/// Decodes `U` with prost; a failure names `U`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| malformed::<U>(&status))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The message's name as in the proto package, e.g. `credit.v1.PushBatch`.
pub fn message_name<U>() -> String {
    let path = std::any::type_name::<U>();
    let last = path.rsplit("::").next().unwrap_or(path);
    if path.contains("::pb::") {
        format!("credit.v1.{last}")
    } else {
        last.to_string()
    }
}

fn malformed<U>(status: &Status) -> Status {
    let name = message_name::<U>();
    tracing::warn!(message = %name, error = %status.message(), "R-NODE-2: undecodable message refused");
    let mut refused = Status::invalid_argument(format!(
        "R-NODE-2: the {name} {NOT_PROTOBUF}: {}",
        status.message()
    ));
    refused.metadata_mut().insert(
        UNDECODABLE_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    refused
}

/// A layer around the server that writes a usage entry for every call refused because
/// its request did not decode (see the module comment).
#[derive(Clone)]
pub struct LogUndecodable {
    pub gate: Gate,
    pub tls: Arc<ServerTls>,
}

impl<S> tower::Layer<S> for LogUndecodable {
    type Service = LogUndecodableService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LogUndecodableService {
            inner,
            log: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LogUndecodableService<S> {
    inner: S,
    log: LogUndecodable,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for LogUndecodableService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        let peer = req.extensions().get::<ConnInfo>().cloned();
        let log = self.log.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            // A refusal before any response message is a trailers-only response: its
            // status, and the mark `malformed` set, are in the headers.
            let marked = response.headers_mut().remove(UNDECODABLE_HEADER).is_some();
            if marked
                && let Some(status) = Status::from_header_map(response.headers())
                && status.code() == Code::InvalidArgument
            {
                let caller = peer.and_then(|info| {
                    let mut probe = tonic::Request::new(());
                    probe.extensions_mut().insert(info);
                    authenticate_peer(&probe, &log.tls).ok().map(|a| a.caller)
                });
                let refusal = Refusal::invalid("(message)", "R-NODE-2", status.message());
                log.gate
                    .refuse(caller.as_ref(), &rpc, Action::Call, refusal)
                    .await;
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn a_malformed_message_is_invalid_argument_naming_it_r_node_2() {
        // Field 1 (batch_ref, a string) holding bytes that are not UTF-8.
        let bytes: &[u8] = &[0x0a, 0x02, 0xc3, 0x28];
        let err = pb::PushBatch::decode(bytes).unwrap_err();
        let status = malformed::<pb::PushBatch>(&Status::internal(err.to_string()));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.metadata().get(UNDECODABLE_HEADER).is_some());
        assert!(
            status.message().contains("credit.v1.PushBatch"),
            "{}",
            status.message()
        );
    }
}
