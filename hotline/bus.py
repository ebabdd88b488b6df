"""The message bus (cosmicpython's): typed commands, one handler per command type.

A service declares its commands as :class:`Request` types (a dataclass: the request message,
who asks, the idempotency key); the command's name, in the audit trail and the stored answers,
is the type's (``class SignOff(Request)`` -> ``"sign_off"``), never a string an adapter passes.
Its ``main`` registers one handler per type on the service's :class:`MessageBus`; registering
a second handler for a type is an error. A handler turns the command into a
:class:`~hotline.uow.Work` (the envelope, the repository, the pure ``decide``, the topic),
and the bus's unit of work applies it (hotline/uow.py: the Mongo one in a service,
:class:`~hotline.uow.InMemoryUnitOfWork` in unit tests).

* ``await bus.handle(command)``: one command; returns the answer (the first one again for a
  retried idempotency key) or raises the :class:`DomainError` that refused it. Commands handled
  at the same moment share a transaction when the store is busy (group commit, hotline/uow.py
  ``run_one``); alone, it is one transaction of its own.
* ``await bus.handle_many(commands)``: a consumer's batch in one transaction (a command on a
  target already in the batch starts the next one); returns one result per command, the answer
  or the DomainError: one refused command does not stop the others.

Adapters stay thin: build the command, ``bus.handle``, return the answer.

A command type marked ``by_state = True`` (a consumed record whose effect the state shows: intake's
ReceiveTicket, routing's RouteTicket, supervision's OpenCase) is applied without a stored answer:
its ``decide`` answers "changes nothing" when the state already holds its effect.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from google.protobuf.message import Message

from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.uow import UnitOfWork, Work

M = TypeVar("M", bound=Message)
C = TypeVar("C", bound="Request[Any]")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Request(Generic[M]):
    """A typed command: ``body`` (the request message, of the type's ``message``), who asks,
    and the idempotency key. Subclass it per command, naming its message::

        class SignOff(CaseCommand, message=lifecycle_pb2.SignOffRequest): ...

    ``name`` is the snake_case class name unless given (``name="..."``)."""

    body: M
    actor: Principal
    idempotency_key: str
    name: ClassVar[str] = ""
    message: ClassVar[type[Message]] = Message
    # True for a command whose decision is idempotent on the state (a consumed record applied
    # again finds its effect there and changes nothing: a ticket received, routed, a round opened):
    # the unit of work keeps no idempotent answer for it (hotline/uow.py ``Work.by_state``)
    by_state: ClassVar[bool] = False

    def __init_subclass__(cls, message: type[Message] | None = None, name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name or snake(cls.__name__)
        if message is not None:
            cls.message = message

    def __post_init__(self) -> None:
        if self.message is not Message and not isinstance(self.body, self.message):
            raise TypeError(f"{type(self).__name__} carries a {self.message.__name__}, "
                            f"not a {type(self.body).__name__}")


Handler = Callable[[C], Awaitable[Work[Any]]]


class MessageBus:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.handlers: dict[type[Any], Handler[Any]] = {}

    def register(self, command_type: type[C], handler: Handler[C]) -> None:
        if command_type in self.handlers:
            raise ValueError(f"{command_type.__name__} already has a handler: one handler per command type")
        self.handlers[command_type] = handler

    def registered(self, name: str) -> type[Any]:
        """The command type of a name (for the adapters that still speak in names)."""
        for command_type in self.handlers:
            if getattr(command_type, "name", None) == name:
                return command_type
        raise KeyError(f"no command named {name!r}")

    async def _work(self, command: Any) -> Work[Any]:
        try:
            handler = self.handlers[type(command)]
        except KeyError:
            raise TypeError(f"no handler for {type(command).__name__}") from None
        work = await handler(command)
        if getattr(type(command), "by_state", False):
            work.by_state = True
        return work

    async def handle(self, command: Any) -> Any:
        result = await self.uow.run_one(await self._work(command))
        if isinstance(result, DomainError):
            raise result
        return result

    async def handle_many(self, commands: Sequence[Any]) -> list[Any]:
        results: list[Any] = [None] * len(commands)
        works: list[tuple[int, Work[Any]]] = []
        for i, command in enumerate(commands):
            try:
                works.append((i, await self._work(command)))
            except DomainError as exc:  # refused before it reached the store
                results[i] = exc
        done = await self.uow.run([w for _, w in works]) if works else []
        for (i, _), result in zip(works, done, strict=True):
            results[i] = result
        return results

