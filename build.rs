//! Compiles the wire contract in `proto/` with protox (pure Rust), so a build needs no
//! system `protoc`. The encoded descriptor set is kept for server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "credit/v1/record.proto",
        "credit/v1/exchange.proto",
        "credit/v1/access.proto",
        "credit/v1/census.proto",
        "credit/v1/objection.proto",
        "credit/v1/federation.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("credit_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Decode errors are the sender's fault: InvalidArgument naming the message.
        .codec_path("crate::rpc::codec::StrictCodec")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
