"""Derive case search's common terms (services/supervision/cases/common_terms.txt): the character
pairs in at least 5 % of the tickets, which the search stores but does not index (issue #21).

    .venv/bin/python -m hotline_dev.common_terms                      # from 4,000 simulated tickets
    .venv/bin/python -m hotline_dev.common_terms --texts tickets.txt  # a district's own: one ticket a line

A district derives the list from its own tickets (title, content and address on one line) and
ships it with its configuration; the list only decides which terms are indexed, never what a
search finds. It also prints the share of index entries the list saves on a held-out sample.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

from hotline_dev.simulator import generate
from services.supervision.cases.search import COMMON_FILE, COMMON_SHARE, common_terms, terms


def simulated(count: int, seed: int) -> Iterator[Sequence[str]]:
    for t in generate(count, seed=seed):
        yield t.title, t.content, t.address


def from_file(path: Path) -> Iterator[Sequence[str]]:
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            yield (line,)


def saved(common: set[str], texts: Iterator[Sequence[str]]) -> float:
    """The share of a ticket's index entries the common terms take away."""
    every = kept = 0
    for parts in texts:
        ts = terms(*parts)
        every += len(ts)
        kept += sum(1 for t in ts if t not in common)
    return 1 - kept / every if every else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=Path, help="one ticket a line (title, content, address)")
    parser.add_argument("--count", type=int, default=4000, help="simulated tickets (without --texts)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--share", type=float, default=COMMON_SHARE)
    parser.add_argument("--out", type=Path, default=COMMON_FILE)
    args = parser.parse_args()
    source = f"{args.texts}" if args.texts else f"{args.count} simulated tickets, seed {args.seed}"
    found = common_terms(from_file(args.texts) if args.texts else simulated(args.count, args.seed), args.share)
    header = (f"# case search's common terms: in at least {args.share:.0%} of the tickets of {source}\n"
              "# (hotline_dev/common_terms.py). Stored, not indexed: services/supervision/cases/search.py\n")
    args.out.write_text(header + "".join(f"{t}\n" for t in found), "utf-8")
    held_out = saved(set(found), simulated(2000, args.seed + 1000))
    print(f"{len(found)} common terms written to {args.out}; "
          f"index entries saved on 2,000 held-out simulated tickets (seed {args.seed + 1000}): {held_out:.1%}")


if __name__ == "__main__":
    main()
