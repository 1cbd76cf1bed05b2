//! The codec every `credit.v1` service and client uses (set in `build.rs`): prost's, except
//! that a message that does not decode is the sender's fault. tonic-prost maps every
//! `prost::DecodeError` (bad wire type, truncated field, a string that is not UTF-8) to
//! `Internal`, which tells a caller the node is broken and tells the operator nothing.
//! Here it is `InvalidArgument`, naming the message that could not be read (R-NODE-2).
//!
//! Such a request never reaches a handler, so it is logged by tracing (at `warn`), not in
//! the usage log: no caller has been established for it.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

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
    Status::invalid_argument(format!(
        "R-NODE-2: the {name} message is not valid protobuf: {}",
        status.message()
    ))
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
        assert!(
            status.message().contains("credit.v1.PushBatch"),
            "{}",
            status.message()
        );
    }
}
