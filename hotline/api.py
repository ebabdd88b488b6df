"""Small helpers for the HTTP and gRPC adapters, so every service answers errors alike."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from fastapi import Header, HTTPException
from google.protobuf import json_format
from google.protobuf.message import Message

from hotline.commands import Invalid


def as_json(message: Message) -> dict[str, Any]:
    """Protobuf message -> JSON-ready dict (proto field names, enums by name)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def not_found(what: str, key: str) -> NoReturn:
    raise HTTPException(status_code=404, detail=f"{what} {key!r} not found")


async def grpc_require(context: grpc.aio.ServicerContext[Any, Any], condition: bool, message: str) -> None:
    """Abort with INVALID_ARGUMENT unless ``condition`` holds."""
    if not condition:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


async def grpc_found(context: grpc.aio.ServicerContext[Any, Any], value: Any, what: str, key: str) -> Any:
    """Return ``value``, or abort with NOT_FOUND when it is None."""
    if value is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"{what} {key!r} not found")
    return value


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(
    key: str = Header(..., alias=IDEMPOTENCY_HEADER, min_length=1, max_length=200,
                      description="Unique per intended change: a retry with the same key returns the first answer "
                                  "and changes nothing"),
) -> str:
    return key


def grpc_idempotency_key(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The ``idempotency-key`` metadata of a gRPC command call ("" when absent: the command
    path then refuses it with INVALID_ARGUMENT)."""
    for name, value in context.invocation_metadata() or ():
        if name == "idempotency-key":
            return str(value)
    return ""


def parse_body(body: dict[str, Any], message_type: type[Message], **path: str) -> Message:
    """A command's JSON body (the message's JSON mapping) with the path's fields (which must agree)."""
    for name, value in path.items():
        if body.get(name, value) != value:
            raise Invalid(f"{name} in the body ({body[name]!r}) differs from the path ({value!r})")
    try:
        return json_format.ParseDict({**body, **path}, message_type())
    except json_format.ParseError as exc:
        raise Invalid(f"bad {message_type.DESCRIPTOR.name}: {exc}") from exc
