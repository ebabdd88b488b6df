"""Summarise py-spy's collapsed stacks (bench/compare.py --profile): the functions with the most
samples, on their own (self) and with what they call (total), in percent of the process's samples.

    .venv/bin/python bench/profile_summary.py bench/results/profiles/<run>/supervision.txt [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int, match: str = "") -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any("select" in f or "epoll" in f for f in frames[-1:]) and "_run_once" in stack:
            continue  # the event loop waiting: idle
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{path}: {samples} busy samples"]
    for title, counter in (("self", own), ("total", total)):
        lines.append(f"  -- {title}")
        shown = 0
        for frame, n in counter.most_common():
            if match and match not in frame:
                continue
            lines.append(f"  {100 * n / max(1, samples):5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames containing this (e.g. services/)")
    args = parser.parse_args()
    for p in args.paths:
        print(summarise(p, args.top, args.match))
