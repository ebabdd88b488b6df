"""A deterministic, stratified, grouped hold-out split (held back from model selection).

Used to measure a classifier on rows that no decision about it has seen:

- **deterministic**: a row's side depends only on a salt and its group key, never on a
  random state or on the order of the file, so anyone with the same data gets the same split;
- **grouped**: rows that share a group key (the same author, or the same text posted twice)
  never sit on both sides, so a near copy of a test row cannot be learnt from;
- **stratified**: groups are taken in hash order while their labels still have room, so each
  label contributes about ``fraction`` of its rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from services.routing.classifier.text import normalize

DUPLICATE_PREFIX = 60  # leading characters of the normalised body that mark a repost


def duplicate_key(text: str) -> str:
    """Rows whose normalised bodies start alike are treated as one message posted twice."""
    body = normalize(text).partition("\n")[2] or normalize(text)
    return body[:DUPLICATE_PREFIX]


def groups_of(keys_per_row: Sequence[Sequence[str]]) -> list[int]:
    """Union of rows sharing any key: one group id (the smallest row index) per row."""
    parent = list(range(len(keys_per_row)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, keys in enumerate(keys_per_row):
        for key in keys:
            if not key:
                continue
            j = first.setdefault(key, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(keys_per_row))]


def holdout_split(row_ids: Sequence[str], labels: Sequence[str], groups: Sequence[int],
                  fraction: float = 0.25, salt: str = "holdout-v1") -> tuple[list[int], list[int]]:
    """(kept, held_back) row indices. ``row_ids`` name the rows (e.g. 留言编号)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must lie in (0, 1)")
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    room = {label: round(n * fraction) for label, n in Counter(labels).items()}

    def rank(g: int) -> str:
        smallest = min(row_ids[i] for i in members[g])
        return hashlib.sha256(f"{salt}:{smallest}".encode()).hexdigest()

    held: list[int] = []
    for g in sorted(members, key=rank):
        need = Counter(labels[i] for i in members[g])
        if all(room[label] >= n for label, n in need.items()):
            held += members[g]
            for label, n in need.items():
                room[label] -= n
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)
