"""Versioned policies (预警规则, 时限政策 ...): a policy document edited by people, kept as versions.

A policy ships as a data file (its first version); the office or an admin saves a new version
through the command path (:class:`hotline.commands.CommandBus`: idempotent, audited), checked
against a small :data:`Schema` first (an error names the precise field, answered as HTTP 422).
Every version is kept (``policy_versions``, ``_id`` "<name>/<version>"); the running service uses
the newest through :class:`LivePolicy`, and any older one by number (a case judged under the version
it started with). :func:`policy_routes` gives any policy the same HTTP API:

* ``GET /policies/<name>``: the current version (number, document, who, when, why);
* ``GET /policies/<name>/versions`` (newest first) and ``GET /policies/<name>/versions/{version}``;
* ``PUT /policies/<name>``: body ``{"doc": {...}, "reason": "...", "expected_version": n}``, header
  Idempotency-Key; a stale ``expected_version`` (someone saved meanwhile) is refused (409).

Each route needs its entry in hotline/policy.py (``"PUT /policies/<name>"`` ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hotline import auth
from hotline.api import idempotency_key
from hotline.auth import Principal
from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, CommandBus, Decision, DomainError, Illegal, Invalid, NotFound
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.uow import Work

log = get_logger(__name__)

T = TypeVar("T")
COLLECTION = "policy_versions"
INDEXES = {COLLECTION: [IndexModel([("name", 1), ("version", DESCENDING)])]}


# ------------------------------------------------------------------ schema (pure)

@dataclass(frozen=True)
class Num:
    """A number in [lo, hi]; ``integer``: a whole number."""

    lo: float
    hi: float
    integer: bool = False
    label: str = ""


@dataclass(frozen=True)
class Words:
    """A list of distinct non-empty strings, at least ``min_items``."""

    min_items: int = 0
    label: str = ""


@dataclass(frozen=True)
class Text:
    """A string (``required``: non-empty)."""

    required: bool = False
    label: str = ""


@dataclass(frozen=True)
class Table:
    """An object whose keys are free (or among ``keys``) and whose values follow ``value``."""

    value: Field
    keys: tuple[str, ...] = ()
    label: str = ""


Field = Num | Words | Text | Table | dict[str, Any]  # a dict: an object with exactly these fields
Schema = dict[str, Field]
OPTIONAL = ("description",)  # fields a policy document may leave out


class PolicyInvalid(DomainError):
    """A policy document refused by its schema: ``field`` is the dotted path of the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("invalid_argument", f"{field}: {message}" if field else message)
        self.field = field


def check(doc: Any, schema: Schema, path: str = "") -> None:
    """Raise :class:`PolicyInvalid` naming the first field of ``doc`` that ``schema`` refuses."""
    if not isinstance(doc, dict):
        raise PolicyInvalid(path, "must be an object")
    for name in doc:
        if name not in schema:
            raise PolicyInvalid(_join(path, name), f"unknown field (known: {', '.join(schema)})")
    for name, spec in schema.items():
        where = _join(path, name)
        if name not in doc:
            if name in OPTIONAL:
                continue
            raise PolicyInvalid(where, "is required")
        _check_field(doc[name], spec, where)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_field(value: Any, spec: Field, where: str) -> None:
    if isinstance(spec, dict):
        check(value, spec, where)
    elif isinstance(spec, Num):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyInvalid(where, f"must be a number, not {value!r}")
        if spec.integer and not (isinstance(value, int) or float(value).is_integer()):
            raise PolicyInvalid(where, f"must be a whole number, not {value!r}")
        if not spec.lo <= value <= spec.hi:
            raise PolicyInvalid(where, f"must be between {spec.lo:g} and {spec.hi:g}, not {value!r}")
    elif isinstance(spec, Text):
        if not isinstance(value, str):
            raise PolicyInvalid(where, f"must be a string, not {value!r}")
        if spec.required and not value.strip():
            raise PolicyInvalid(where, "must not be empty")
    elif isinstance(spec, Words):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise PolicyInvalid(where, "must be a list of non-empty strings")
        if len(value) < spec.min_items:
            raise PolicyInvalid(where, f"needs at least {spec.min_items} entries")
        doubles = sorted({v for v in value if value.count(v) > 1})
        if doubles:
            raise PolicyInvalid(where, f"lists {', '.join(doubles)} more than once")
    else:  # Table
        if not isinstance(value, dict):
            raise PolicyInvalid(where, "must be an object")
        for key, item in value.items():
            if spec.keys and key not in spec.keys:
                raise PolicyInvalid(_join(where, key), f"unknown key (one of {', '.join(spec.keys)})")
            if not key.strip():
                raise PolicyInvalid(where, "keys must not be empty")
            _check_field(item, spec.value, _join(where, key))


# ------------------------------------------------------------------ versions (pure)

@dataclass(frozen=True)
class PolicyVersion:
    name: str  # e.g. "warning_rules"
    version: int  # 1 = the shipped file, then 2, 3, ...
    doc: Doc
    actor: str
    at: datetime
    reason: str

    def to_doc(self) -> Doc:
        return {"name": self.name, "version": self.version, "doc": self.doc, "actor": self.actor, "at": self.at,
                "reason": self.reason}

    def as_json(self, with_doc: bool = True) -> Doc:
        out = {**self.to_doc(), "at": self.at.isoformat()}
        if not with_doc:
            out.pop("doc")
        return out

    @classmethod
    def from_doc(cls, d: Doc) -> PolicyVersion:
        at = d["at"] if d["at"].tzinfo else d["at"].replace(tzinfo=UTC)
        return cls(d["name"], d["version"], d["doc"], d["actor"], at, d.get("reason", ""))


Validate = Callable[[Any], None]  # raises PolicyInvalid naming the field


def new_version(current: PolicyVersion | None, doc: Any, validate: Validate, expected_version: int,
                actor: Principal, now: datetime, reason: str) -> Decision[PolicyVersion]:
    """The ``decide`` of saving a policy: the next version, or why not. When the policy's documents
    carry a ``version`` field, the new one gets the stored number in their form: a number (3) or a
    label ("v3"), so what uses it can say which."""
    if current is None:
        raise Illegal("the policy is not loaded yet")
    if expected_version and expected_version != current.version:
        raise Illegal(f"the policy is at version {current.version} now (you edited version {expected_version}); "
                      "reload it and make your change again")
    if not reason.strip():
        raise PolicyInvalid("reason", "a reason for the change is required")
    validate(doc)
    number = current.version + 1
    form = current.doc.get("version", doc.get("version"))
    if form is not None:
        doc = {**doc, "version": number if isinstance(form, int) and not isinstance(form, bool) else f"v{number}"}
    if {k: v for k, v in doc.items() if k != "version"} == {k: v for k, v in current.doc.items() if k != "version"}:
        raise Invalid(f"nothing changed: the document equals version {current.version}")
    new = PolicyVersion(current.name, number, doc, actor.subject, now, reason.strip())
    return Decision(new, answer=new.as_json(), audit={"policy_version": number})


# ------------------------------------------------------------------ store

class PolicyStore:
    """The versions of one policy (a Repository for the command path: load the newest, save the next)."""

    kind = "policy"

    def __init__(self, db: AsyncDatabase[Doc], name: str) -> None:
        self.name = name
        self.versions = db[COLLECTION]
        self.saves = 0  # versions saved (committed) through this process's API: its LivePolicy re-reads at once

    async def load(self, target: str = "", session: Any = None) -> PolicyVersion | None:
        doc = await self.versions.find_one({"name": self.name}, sort=[("version", DESCENDING)], session=session)
        return PolicyVersion.from_doc(doc) if doc else None

    async def save(self, state: PolicyVersion, session: Any = None) -> None:
        """Add ``state``; a version stored already (a concurrent save) is refused (409)."""
        try:
            await self.versions.insert_one({"_id": f"{self.name}/{state.version}", **state.to_doc()}, session=session)
        except DuplicateKeyError as exc:
            raise Illegal(f"version {state.version} of {self.name} was saved meanwhile; reload and retry") from exc

    async def ensure(self, shipped: Doc, actor: str, at: datetime, version: int = 1) -> PolicyVersion:
        """The newest version (start-up): the shipped file is stored as ``version`` only when every
        stored version is older, so a stored version wins over the file and a file never downgrades."""
        current = await self.load()
        if current is not None and current.version >= version:
            if current.version == version and current.doc != shipped:
                log.error("the shipped policy file differs from the stored version of the same number; the stored "
                          "one is used", policy=self.name, version=version)
            return current
        first = PolicyVersion(self.name, version, shipped, actor, at, "随程序发布的文件")
        try:
            await self.save(first)
        except DomainError:  # another replica seeded it first
            stored = await self.load()
            assert stored is not None
            return stored
        return first

    async def get(self, version: int) -> PolicyVersion | None:
        doc = await self.versions.find_one({"_id": f"{self.name}/{version}"})
        return PolicyVersion.from_doc(doc) if doc else None

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        """Every version, newest first."""
        docs = await self.versions.find({"name": self.name}).sort("version", DESCENDING).limit(limit).to_list()
        return [PolicyVersion.from_doc(d) for d in docs]

    async def newest_number(self) -> int:
        doc = await self.versions.find_one({"name": self.name}, {"version": 1}, sort=[("version", DESCENDING)])
        return int(doc["version"]) if doc else 0


class LivePolicy(Generic[T]):
    """The stored versions, parsed (``parse``) once each: a version never changes. ``current()`` is
    the newest: the store is asked for the newest number at most every ``refresh_seconds`` (0: at
    every use), so every replica takes a saved version soon after it is saved, and the replica that
    saved it at once (``PolicyStore.saves``). ``get(n)`` is
    version n (what a case started under keeps for life)."""

    def __init__(self, store: PolicyStore, parse: Callable[[Doc], T], refresh_seconds: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store, self.parse = store, parse
        self.refresh_seconds, self.monotonic = refresh_seconds, monotonic
        self._parsed: dict[int, T] = {}
        self._newest: tuple[float, int, int] | None = None  # when the newest number was asked, it, store.saves

    async def current(self) -> T:
        now = self.monotonic()
        if self._newest is None or now - self._newest[0] >= self.refresh_seconds or \
                self._newest[2] != self.store.saves:
            saves = self.store.saves
            number = await self.store.newest_number()
            if number not in self._parsed:
                found = await self.store.load()
                if found is None:
                    raise Illegal(f"policy {self.store.name} is not stored")
                number = self._keep(found)
            self._newest = (now, number, saves)
        return self._parsed[self._newest[1]]

    async def get(self, number: int) -> T | None:
        if number not in self._parsed:
            found = await self.store.get(number)
            if found is None:
                return None
            self._keep(found)
        return self._parsed[number]

    def _keep(self, found: PolicyVersion) -> int:
        self._parsed[found.version] = self.parse(found.doc)
        return found.version


# ------------------------------------------------------------------ the command

@dataclass(frozen=True)
class SavePolicy(Request[Any]):
    """A new version of a policy (body: the document); its audit action and stored answers keep the
    policy's name (``save_<policy>``, e.g. ``save_sla_policy``)."""

    policy: str = ""
    reason: str = ""
    expected_version: int = 0


class PolicyHandler:
    """The one handler of :class:`SavePolicy` for one policy's store (see :func:`register`)."""

    def __init__(self, store: PolicyStore, validate: Validate, clock: Clock, topic: str) -> None:
        self.store, self.validate, self.clock, self.topic = store, validate, clock, topic

    async def save(self, command: SavePolicy) -> Work[PolicyVersion]:
        if command.policy != self.store.name:
            raise Invalid(f"this bus saves the policy {self.store.name}, not {command.policy!r}")
        document: Doc = command.body if isinstance(command.body, dict) else {}
        envelope = Command(f"save_{self.store.name}", self.store.name, command.actor, command.idempotency_key,
                           command.reason)
        now = self.clock.now()
        return Work(envelope, self.store, lambda newest: new_version(
            newest, document, self.validate, command.expected_version, command.actor, now, command.reason),
            self.topic)


def register(bus: MessageBus, handler: PolicyHandler) -> None:
    """One policy's SavePolicy on its bus (one handler per command type: a bus per policy)."""
    bus.register(SavePolicy, handler.save)


# ------------------------------------------------------------------ HTTP

class Refusal(BaseModel):
    """A 422: the schema's refusal (``field``: the dotted path at fault), or FastAPI's own for a body
    that is not a JSON object (``detail`` then lists the errors)."""

    detail: str | list[Any]
    field: str = ""
    code: str = ""


def policy_routes(store: PolicyStore, validate: Validate, bus: CommandBus | MessageBus, clock: Clock, topic: str,
                  title: str) -> APIRouter:
    """The HTTP API of one policy (see the module doc); ``title`` names it in the docs. Its saves are
    :class:`SavePolicy` commands on a message bus of its own (over ``bus``'s unit of work)."""
    name = store.name
    saves = MessageBus(bus.uow)
    register(saves, PolicyHandler(store, validate, clock, topic))
    api = APIRouter(tags=["policies"])

    async def current() -> PolicyVersion:
        found = await store.load()
        if found is None:
            raise NotFound("policy", name)
        return found

    @api.get(f"/policies/{name}", summary=f"{title}: the current version")
    async def get_policy() -> Doc:
        return (await current()).as_json()

    @api.get(f"/policies/{name}/versions", summary=f"{title}: every version, newest first (without documents)")
    async def list_versions() -> Doc:
        return {"name": name, "versions": [v.as_json(with_doc=False) for v in await store.history()]}

    @api.get(f"/policies/{name}/versions/{{version}}", summary=f"{title}: one version")
    async def get_version(version: int = Path(..., ge=1)) -> Doc:
        found = await store.get(version)
        if found is None:
            raise NotFound(f"version of {name}", str(version))
        return found.as_json()

    @api.put(f"/policies/{name}", summary=f"{title}: save a new version (office, admin)",
             responses={422: {"model": Refusal, "description": "The document or the request refused, and where"}},
             description="Body: {\"doc\": the policy document, \"reason\": why, \"expected_version\": the version "
                         "edited (optional; a newer one stored meanwhile is refused with 409)}. A document the schema "
                         "refuses is answered 422 with `field`, the dotted path at fault. Header Idempotency-Key.")
    async def put_policy(body: dict[str, Any] = Body(...), who: Principal = Depends(auth.principal),
                         key: str = Depends(idempotency_key)) -> Any:
        doc, reason, expected = body.get("doc"), body.get("reason", ""), body.get("expected_version", 0)
        try:
            if not isinstance(reason, str) or not reason.strip():
                raise PolicyInvalid("reason", "a reason for the change is required")
            if isinstance(expected, bool) or not isinstance(expected, int):
                raise PolicyInvalid("expected_version", "must be a version number")
            validate(doc)  # here first, so a refused document is a 422 naming its field
        except PolicyInvalid as exc:
            return JSONResponse({"detail": exc.message, "field": exc.field, "code": exc.code}, status_code=422)
        answer = await saves.handle(SavePolicy(doc, who, key, policy=name, reason=reason,
                                               expected_version=expected))
        store.saves += 1  # committed: this replica's LivePolicy takes it at its next use
        return answer

    return api
