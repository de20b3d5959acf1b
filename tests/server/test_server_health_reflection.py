"""The standard gRPC health service and server reflection, as generic tools (grpcurl, probes) use them."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from server_helpers import config

from engine.server.app import GuardServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("service", ["", "palisade.v1.Guard"])
def test_health_reports_serving(channel: grpc.Channel, service: str) -> None:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == SERVING


def test_health_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="nope.v1.Nope"))
    assert isinstance(info.value, grpc.Call) and info.value.code() is grpc.StatusCode.NOT_FOUND


def reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return response


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    response = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in response.list_services_response.service}
    assert names == {
        "palisade.v1.Guard",
        "palisade.v1.Approvals",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_reflection_describes_the_check_method(channel: grpc.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="palisade.v1.Guard")
    response = reflect(channel, request)
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in response.file_descriptor_response.file_descriptor_proto
    ]
    guard = next(f for f in files if f.name == "palisade/v1/guard.proto")
    (service,) = guard.service
    assert [(m.name, m.input_type, m.output_type) for m in service.method] == [
        ("Check", ".palisade.v1.CheckRequest", ".palisade.v1.CheckResponse")
    ]


def test_health_turns_not_serving_on_shutdown() -> None:
    server = GuardServer(config())
    port = server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest()).status == SERVING
        server.health.enter_graceful_shutdown()
        assert stub.Check(health_pb2.HealthCheckRequest()).status == NOT_SERVING
    server.stop(0)
