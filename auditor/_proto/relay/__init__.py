"""Generated protobuf/gRPC stubs (see scripts/genproto.py).  Do not edit by hand."""
