"""Schemathesis hooks for Gridsync's API contract test (tests/tests/openapi_contract.rs).

The sync frames (`application/x-gridsync`) are opaque bytes to the fuzzer: it sends the binary
strings it generates as they are, and checks answers as binary strings.
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/x-gridsync")
def gridsync_frame(ctx, value):
    return {"data": serialize_binary(value)}


@schemathesis.deserializer("application/x-gridsync")
def gridsync_frame_answer(ctx, response):
    return response.content.decode("latin-1")
