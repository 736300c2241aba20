"""The serializers ``Producer(value_serializer=…, key_serializer=…)`` names. Without one, a value
or key must be ``bytes``-like or ``str`` (UTF-8): nothing is guessed."""

import json
from typing import Any


def json_bytes(value: Any) -> bytes:
    """``"json"``: compact JSON, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def text_bytes(value: Any) -> bytes:
    """``"str"``: ``str(value)`` as UTF-8, for numbers, UUIDs and the like."""
    return str(value).encode()


NAMED = {"json": json_bytes, "str": text_bytes}
