"""Schemathesis hooks for Gridsync's API contract test (tests/tests/openapi_contract.rs).

The sync frames (`application/x-gridsync`) are opaque bytes to the fuzzer: it sends the binary
strings it generates as they are, and checks answers as binary strings.
"""

import ast
import gc
import threading

import schemathesis
from schemathesis.transport.serialization import serialize_binary

# CPython before 3.11.8 keeps the recursion counter of ast.parse per interpreter rather than per
# call, so a parse interleaved with another (the second worker thread) or with Python code run by a
# garbage collection can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905). Hypothesis parses Schemathesis's own source that way to describe its
# filters, and once failed a CI run so. One parse at a time, with no collection inside it, keeps
# the fuzzer from failing on itself; what it checks of the server is unchanged.
_parse = ast.parse
_parsing = threading.Lock()


def _parse_one_at_a_time(*args, **kwargs):
    with _parsing:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return _parse(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()


ast.parse = _parse_one_at_a_time


@schemathesis.serializer("application/x-gridsync")
def gridsync_frame(ctx, value):
    return {"data": serialize_binary(value)}


@schemathesis.deserializer("application/x-gridsync")
def gridsync_frame_answer(ctx, response):
    return response.content.decode("latin-1")
