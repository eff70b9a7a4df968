"""Decoding stored values the way the application that wrote them does.

Checkpoints written through LangGraph's ``EncryptedSerializer`` carry types
like ``msgpack+aes``. With ``LANGGRAPH_AES_KEY`` set (the variable
``EncryptedSerializer.from_pycryptodome_aes()`` reads) they are decrypted;
without it, reading one is a clear error instead of garbage.
"""

from __future__ import annotations

import os
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from langgraph.checkpoint.postgres.cli._errors import CliError

KEY_VARIABLE = "LANGGRAPH_AES_KEY"


class KeylessSerializer(JsonPlusSerializer):
    """LangGraph's default serializer, refusing encrypted values by name."""

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, _ = data
        if "+" in type_:
            raise CliError(
                f"this thread holds encrypted values ({type_})",
                f"set {KEY_VARIABLE} to the key the application encrypts with",
            )
        return super().loads_typed(data)


def serializer() -> SerializerProtocol:
    """The serializer to decode with: AES when ``LANGGRAPH_AES_KEY`` is set."""
    if not os.environ.get(KEY_VARIABLE):
        return KeylessSerializer()
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    try:
        return EncryptedSerializer.from_pycryptodome_aes()
    except (ImportError, ValueError) as exc:
        raise CliError(f"cannot use {KEY_VARIABLE}: {exc}") from None
