"""One writer of the case document (issue #20): nothing but the case repository
(services/supervision/cases/store.py) writes supervision's ``cases`` collection. This test reads
the source with ast; tests/integration/test_one_writer.py checks the writes at run time.

A write is a collection write method called on the cases collection (``db["cases"]``, a name or
attribute bound to it, ``store.cases``), the collection handed to a writing helper
(``insert_missing``, ``write_batch``), a bulk-write model aimed at it (``namespace=<cases>.full_name``), or a
component told to keep its documents in it (``collection="cases"``: the kit's timers).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("services", "hotline", "hotline_dev")  # the product (benchmarks and tests seed their own stores)
WRITERS = {"services/supervision/cases/store.py"}  # THE registry of writers of `cases`
CASES = "cases"
WRITES = {"insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
          "bulk_write", "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "drop", "rename"}
WRITING_HELPERS = {"insert_missing", "write_batch"}


class Finder(ast.NodeVisitor):
    """The places a module writes the cases collection (line, what)."""

    def __init__(self) -> None:
        self.bound: set[str] = set()  # names and attributes (``self.x``) bound to the collection
        self.found: list[tuple[int, str]] = []

    def names_cases(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript):  # db["cases"], db[COLLECTION] (cases/store.py's name for it)
            key = node.slice
            return (isinstance(key, ast.Constant) and key.value == CASES) or \
                (isinstance(key, ast.Name | ast.Attribute) and _last(key) == "COLLECTION" and self.store_collection)
        if isinstance(node, ast.Attribute) and node.attr == CASES and not isinstance(node.value, ast.Call):
            return True  # store.cases, self.store.cases (CaseStore's collection)
        return _dotted(node) in self.bound

    store_collection = False  # set for a module that imports COLLECTION from cases/store.py

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.module == "services.supervision.cases.store" and any(a.name == "COLLECTION" for a in node.names):
            self.store_collection = True

    def visit_Assign(self, node: ast.Assign) -> None:  # noqa: N802
        if self.names_cases(node.value):
            self.bound.update(_dotted(t) for t in node.targets)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITES and self.names_cases(func.value):
            self.found.append((node.lineno, f".{func.attr}() on the cases collection"))
        if _last(func) in WRITING_HELPERS and node.args and self.names_cases(node.args[0]):
            self.found.append((node.lineno, f"{_last(func)}() of the cases collection"))
        for kw in node.keywords:
            value = kw.value
            if kw.arg == "collection" and isinstance(value, ast.Constant) and value.value == CASES:
                self.found.append((node.lineno, "documents kept in the cases collection (collection='cases')"))
            if kw.arg == "namespace" and isinstance(value, ast.Attribute) and value.attr == "full_name" and \
                    self.names_cases(value.value):
                self.found.append((node.lineno, "a bulk-write model aimed at the cases collection"))
        self.generic_visit(node)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _last(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def writes(source: str) -> list[tuple[int, str]]:
    finder = Finder()
    finder.visit(ast.parse(source))
    return finder.found


def test_only_the_case_repository_writes_the_cases_collection() -> None:
    offenders = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("hotline/v1/") or rel in WRITERS:
                continue
            offenders += [f"{rel}:{line}: {what}" for line, what in writes(path.read_text("utf-8"))]
    assert not offenders, "only cases/store.py writes `cases` (issue #20):\n" + "\n".join(offenders)


def test_the_registered_writer_is_where_the_writes_are() -> None:
    """The registry is not empty talk: the checker sees the case repository's own writes (the first
    round's insert, the lifecycle's save, the levels' fields, the timers' stages)."""
    (writer,) = WRITERS
    found = writes((ROOT / writer).read_text("utf-8"))
    kinds = {what for _, what in found}
    assert "insert_missing() of the cases collection" in kinds
    assert "a bulk-write model aimed at the cases collection" in kinds
    assert {".update_one() on the cases collection", ".bulk_write() on the cases collection",
            ".replace_one() on the cases collection"} <= kinds, found


def test_the_checker_finds_every_kind_of_write() -> None:
    assert writes('db["cases"].update_one({"_id": t}, {"$set": {"supervision_level": 1}})')
    assert writes('self.store.cases.replace_one({}, doc)')
    assert writes('cases = db["cases"]\nawait cases.insert_one(doc)')
    assert writes('self.coll = db["cases"]\nawait self.coll.bulk_write(ops)')
    assert writes('await insert_missing(db["cases"], docs)')
    assert writes('ReplaceOne({}, doc, namespace=self.store.cases.full_name)')
    assert writes('Timers(db, outbox, clock, alarms, collection="cases", embedded=True)')
    assert writes('from services.supervision.cases.store import COLLECTION\ndb[COLLECTION].delete_many({})')
    # reads are not writes, nor is asking the repository or the lifecycle's commands
    assert not writes('await db["cases"].find_one({"_id": t})\nawait find_in(store.cases, ids)')
    assert not writes('await self.cases.run("close_merged", request, SYSTEM, key)')
    assert not writes('await self.cases.save_supervision(case, limit, session)')
    assert not writes('db["case_supervision"].replace_one({}, doc)')
