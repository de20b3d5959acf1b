"""The generated protobuf and gRPC modules, re-exported for the rest of engine/server and the client."""

from __future__ import annotations

from engine.server.gen.palisade.v1 import guard_pb2 as pb
from engine.server.gen.palisade.v1 import guard_pb2_grpc as pb_grpc

GUARD_SERVICE = pb.DESCRIPTOR.services_by_name["Guard"].full_name
CHECK_METHOD = f"/{GUARD_SERVICE}/Check"

__all__ = ["CHECK_METHOD", "GUARD_SERVICE", "pb", "pb_grpc"]
