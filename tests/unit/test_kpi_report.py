"""A monthly report of a simulated month: it opens as PDF, its charts render (a page rendered
to an image is not blank), and its numbers are the engine's."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from matplotlib import image as mpimg
from openpyxl import load_workbook  # type: ignore[import-untyped]

from services.metrics import report
from services.metrics.kpi import RATES, KpiPolicy, Period, compute, rank_units
from services.metrics.simulate import lifecycles

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
AS_OF = datetime(2026, 12, 10, 9, 0, tzinfo=TZ)
FACTS = list(lifecycles(MONTH, per_day=30, seed=11, as_of=AS_OF, lead_days=70))
pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (scripts/bootstrap.sh)")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data = report.build(FACTS, POLICY, MONTH, AS_OF)
    out = tmp_path_factory.mktemp("report")
    paths = {}
    for fmt, content in report.render(data).items():
        paths[fmt] = out / f"{data.id}.{fmt}"
        paths[fmt].write_bytes(content)
    return paths


def test_the_pdf_opens_and_its_chart_pages_are_not_blank(files: dict[str, Path]) -> None:
    info = subprocess.run(["pdfinfo", str(files["pdf"])], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+5$", info, re.M), info
    for page in (1, 2, 3):
        prefix = files["pdf"].parent / f"page{page}"
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", str(page), "-l", str(page), "-singlefile",
                        str(files["pdf"]), str(prefix)], check=True)
        pixels = mpimg.imread(f"{prefix}.png")[..., :3]
        ink = (pixels.mean(axis=2) < 0.9).mean()  # share of pixels that are not white
        colours = (abs(pixels[..., 0] - pixels[..., 2]) > 0.2).mean()  # bars and lines are coloured
        assert ink > 0.03, f"page {page} is nearly blank ({ink:.3f})"
        assert colours > 0.005, f"page {page} has no chart colour ({colours:.4f})"


def test_the_pdf_says_the_engines_numbers(files: dict[str, Path]) -> None:
    text = subprocess.run(["pdftotext", "-layout", str(files["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout
    total = compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, as_of=AS_OF).total
    assert "区12345热线工作月报（2026年11月）" in text
    assert f"工单{total.tickets:,}件" in text.replace("\n", "").replace(" ", "")
    flat = " ".join(text.split())
    for name, title in RATES.items():
        rate = total.rate(name, POLICY)
        assert rate.value is not None
        assert f"{title} {float(rate.value) * 100:.2f}% {float(rate.numerator):g}/{rate.denominator}" in flat
    best = rank_units(FACTS, POLICY, MONTH, as_of=AS_OF)[0]
    assert f"1 {best.unit_name}" in flat and f"{float(best.score):.2f}" in flat


def test_the_xlsx_holds_the_engines_figures(files: dict[str, Path]) -> None:
    book = load_workbook(io.BytesIO(files["xlsx"].read_bytes()), data_only=True)
    total = compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, as_of=AS_OF).total
    rows = {r[1]: r for r in book["概况"].iter_rows(min_row=5, max_row=6 + len(RATES), values_only=True)}
    assert rows["tickets"][2] == total.tickets
    for name in RATES:
        rate = total.rate(name, POLICY)
        assert rows[name][2] == pytest.approx(float(rate.value or 0), rel=1e-12) and rows[name][4] == rate.denominator
    ranked = rank_units(FACTS, POLICY, MONTH, as_of=AS_OF)
    sheet = list(book["单位排名"].iter_rows(min_row=2, values_only=True))
    assert [(r[1], r[5]) for r in sheet] == [(u.unit_id, pytest.approx(float(u.score), rel=1e-12)) for u in ranked]


def test_the_html_embeds_every_chart(files: dict[str, Path]) -> None:
    html = files["html"].read_text("utf-8")
    assert html.count("data:image/png;base64,") == 6 and "红榜" in html and "黑榜" in html
