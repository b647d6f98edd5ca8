"""The Hubble edge: the only package that imports grpc, protobuf and the generated stubs."""

import os

# gRPC's C core logs connection teardown (GOAWAY) at info level to stderr; keep it to errors
# unless the user asked for more.  Must be set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
