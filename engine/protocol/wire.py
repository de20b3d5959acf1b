"""The generated protobuf and gRPC modules, re-exported for the rest of engine/server and the client."""

from __future__ import annotations

from engine.protocol.gen.palisade.v1 import approvals_pb2 as apb
from engine.protocol.gen.palisade.v1 import approvals_pb2_grpc as apb_grpc
from engine.protocol.gen.palisade.v1 import guard_pb2 as pb
from engine.protocol.gen.palisade.v1 import guard_pb2_grpc as pb_grpc

GUARD_SERVICE = pb.DESCRIPTOR.services_by_name["Guard"].full_name
APPROVALS_SERVICE = apb.DESCRIPTOR.services_by_name["Approvals"].full_name
CHECK_METHOD = f"/{GUARD_SERVICE}/Check"

__all__ = ["APPROVALS_SERVICE", "CHECK_METHOD", "GUARD_SERVICE", "apb", "apb_grpc", "pb", "pb_grpc"]
