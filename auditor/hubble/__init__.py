"""The Hubble edge: the only package that imports grpc, protobuf and the generated stubs."""
