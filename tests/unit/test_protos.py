"""The committed stubs in hotline/v1 must be exactly what the protos generate."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "hotline" / "v1").iterdir())
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "hotline" / "v1").iterdir()
                       if p.suffix in (".py", ".pyi") and p.name != "__init__.py")
    assert generated == committed, "run scripts/gen_protos.sh and commit the result"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, ROOT / p, shallow=False)]
    assert not stale, f"stubs differ from the protos, run scripts/gen_protos.sh: {stale}"
