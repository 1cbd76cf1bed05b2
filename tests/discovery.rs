//! A stock gRPC client can discover and check the node: standard health and server
//! reflection, over the same mutual TLS (R-NODE-2, R-NODE-3).

mod common;

use common::*;
use credit_node::domain::caller::Role;
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_and_reflection_answer() {
    let t = TestNode::start().await;
    let identity = ClientIdentity::load(&t.identity(Role::Operator, LINGYUAN, "ops")).unwrap();
    let channel = connect(&t.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "credit.v1.Exchange".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(response)) = responses.next().await else {
        panic!("no reflection answer")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["credit.v1.Exchange", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
