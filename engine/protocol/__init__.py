"""The gRPC wire: the generated code (gen/, from proto/) and the proto <-> domain codecs."""
