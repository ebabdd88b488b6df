"""The search index: Tantivy (BM25) over jieba words, one index for articles and resolved cases.

Documents are added and replaced one by one (delete by id, add, commit), so the index follows the
store incrementally; a query is a disjunction of its words over two text fields (the title boosted; body and answer),
filtered by kind, category, unit and list item with exact terms. Thread-safe for one writer (the
service's indexer) and any number of searches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import tantivy

from services.metrics.knowledge.text import query_words

TITLE_BOOST = 2.0  # a title is short: its own field (own length norm), boosted
FILTER_FIELDS = ("kind", "category", "unit", "list_item")


@dataclass(frozen=True)
class IndexDoc:
    doc_id: str
    kind: str  # "case" | "article"
    title: Sequence[str]  # words (text.words)
    body: Sequence[str]
    answer: Sequence[str] = ()
    category: str = ""
    unit: str = ""
    list_item: str = ""
    extra_units: Sequence[str] = field(default_factory=tuple)  # more owners a unit filter finds it under


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    for name in FILTER_FIELDS:
        b.add_text_field(name, stored=False, tokenizer_name="raw", index_option="basic")
    # two text fields: the title, and the rest (body, answer); a query is two clauses per word
    b.add_text_field("title", stored=False, tokenizer_name="whitespace", index_option="freq")
    b.add_text_field("text", stored=False, tokenizer_name="whitespace", index_option="freq")
    return b.build()


class SearchIndex:
    """An in-memory Tantivy index (``path``: on disk instead)."""

    def __init__(self, path: str | None = None, heap_bytes: int = 64_000_000) -> None:
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=path)
        self.writer = self.index.writer(heap_size=heap_bytes, num_threads=1)
        self.lock = threading.Lock()
        self.pending = 0

    def _document(self, d: IndexDoc) -> tantivy.Document:
        doc = tantivy.Document()
        doc.add_text("doc_id", d.doc_id)
        doc.add_text("kind", d.kind)
        for name in ("category", "list_item"):
            if value := getattr(d, name):
                doc.add_text(name, value)
        for unit in {d.unit, *d.extra_units} - {""}:
            doc.add_text("unit", unit)
        doc.add_text("title", " ".join(d.title))
        doc.add_text("text", " ".join([*d.body, *d.answer]))
        return doc

    def put(self, docs: Iterable[IndexDoc], commit: bool = True) -> int:
        """Add or replace documents (by id); visible to searches after the commit."""
        n = 0
        with self.lock:
            for d in docs:
                self.writer.delete_documents_by_term("doc_id", d.doc_id)
                self.writer.add_document(self._document(d))
                n += 1
            self.pending += n
            if commit and self.pending:
                self.commit_locked()
        return n

    def apply(self, put: Sequence[IndexDoc], delete: Sequence[str] = ()) -> None:
        """Add or replace ``put``, remove ``delete``: one commit."""
        with self.lock:
            for doc_id in delete:
                self.writer.delete_documents_by_term("doc_id", doc_id)
            for d in put:
                self.writer.delete_documents_by_term("doc_id", d.doc_id)
                self.writer.add_document(self._document(d))
            if put or delete:
                self.commit_locked()

    def remove(self, doc_id: str) -> None:
        self.apply([], [doc_id])

    def commit(self) -> None:
        with self.lock:
            self.commit_locked()

    def commit_locked(self) -> None:
        self.writer.commit()
        self.index.reload()
        self.pending = 0

    def __len__(self) -> int:
        return int(self.index.searcher().num_docs)

    def query(self, words: Sequence[str], kind: str, category: str = "", unit: str = "",
              list_item: str = "", exclude: Sequence[str] = ()) -> tantivy.Query:
        should = [(tantivy.Occur.Should, q) for w in words for q in (
            tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, "title", w), TITLE_BOOST),
            tantivy.Query.term_query(self.schema, "text", w))]
        text = tantivy.Query.boolean_query(should) if should else tantivy.Query.empty_query()
        must = [(tantivy.Occur.Must, text), (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "kind", kind))]
        for name, value in (("category", category), ("unit", unit), ("list_item", list_item)):
            if value:
                must.append((tantivy.Occur.Must, tantivy.Query.term_query(self.schema, name, value)))
        for doc_id in exclude:
            must.append((tantivy.Occur.MustNot, tantivy.Query.term_query(self.schema, "doc_id", doc_id)))
        return tantivy.Query.boolean_query(must)

    def search(self, text: str, kind: str, limit: int = 5, category: str = "", unit: str = "",
               list_item: str = "", exclude: Sequence[str] = (), words: Sequence[str] | None = None) -> list[Hit]:
        """The best ``limit`` documents of ``kind`` for ``text`` (BM25), filtered."""
        words = query_words(text) if words is None else words
        if not words:
            return []
        searcher = self.index.searcher()
        result = searcher.search(self.query(words, kind, category, unit, list_item, exclude), limit, count=False)
        return [Hit(str(searcher.doc(address)["doc_id"][0]), float(score)) for score, address in result.hits]
