"""The gRPC adapters: servicers, proto <-> domain converters; the only importer of generated code."""
