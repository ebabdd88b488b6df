"""Reading labelled tickets from CSV (or XLSX when openpyxl is installed)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.routing.classifier.errors import DataError
from services.routing.classifier.text import compose

ENCODINGS = ("utf-8-sig", "gb18030")  # what Chinese spreadsheets get saved as


@dataclass(frozen=True)
class Table:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    sha256: str


@dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: list[str]
    skipped: int  # rows without a label or without any text
    table: Table
    rows: list[dict[str, str]] = field(default_factory=list)  # the table rows behind texts, in order


def split_columns(spec: str) -> list[str]:
    """``"留言主题,留言详情"`` -> ["留言主题", "留言详情"] (ASCII or full-width commas)."""
    return [c.strip() for c in re.split(r"[,，]", spec) if c.strip()]


def read_table(path: str | Path) -> Table:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    raw = p.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        columns, rows = _read_xlsx(p)
    elif p.suffix.lower() == ".xls":
        raise DataError(f"{p}: old .xls workbooks are not supported; save it as CSV (UTF-8)")
    else:
        columns, rows = _read_csv(p, raw)
    if not columns:
        raise DataError(f"data file {p} is empty")
    if not rows:
        raise DataError(f"data file {p} has a header but no rows")
    return Table(p, columns, rows, digest)


def _read_csv(path: Path, raw: bytes) -> tuple[list[str], list[dict[str, str]]]:
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DataError(f"{path}: not UTF-8 or GB18030 text; save it as CSV (UTF-8)")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        columns = [c.strip() for c in header]
        rows = [dict(zip(columns, r, strict=False)) for r in reader if any(cell.strip() for cell in r)]
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    return ([] if not any(columns) else columns), rows


def _read_xlsx(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        import openpyxl  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise DataError(
            f"{path}: reading .xlsx needs the openpyxl package, which is not installed; "
            "convert the sheet to CSV (UTF-8) and pass that file instead") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a bad file
        raise DataError(f"{path}: cannot read the workbook: {exc}") from exc
    sheet = book.worksheets[0]
    it = sheet.iter_rows(values_only=True)
    header = next(it, None) or ()
    columns = ["" if c is None else str(c).strip() for c in header]
    rows = []
    for r in it:
        cells = ["" if c is None else str(c) for c in r]
        if any(c.strip() for c in cells):
            rows.append(dict(zip(columns, cells, strict=False)))
    book.close()
    return ([] if not any(columns) else columns), rows


def require_columns(table: Table, wanted: list[str]) -> None:
    if not wanted:
        raise DataError("no text columns given")
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise DataError(f"{table.path}: no column {', '.join(repr(c) for c in missing)}; "
                        f"the file has {', '.join(repr(c) for c in table.columns)}")


def load_examples(path: str | Path, text_columns: list[str], label_column: str | None) -> Examples:
    """Texts (columns joined title-first, see ``text.compose``) and labels of a table."""
    table = read_table(path)
    require_columns(table, text_columns + ([label_column] if label_column else []))
    texts, labels, used, skipped = [], [], [], 0
    for row in table.rows:
        text = compose(*((row.get(c) or "") for c in text_columns))
        label = (row.get(label_column) or "").strip() if label_column else ""
        if not text or (label_column and not label):
            skipped += 1
            continue
        texts.append(text)
        labels.append(label)
        used.append(row)
    if not texts:
        raise DataError(f"{table.path}: no row has both text and a label")
    return Examples(texts, labels, skipped, table, used)


def load_label_descriptions(path: str | Path, labels: set[str],
                            relabel: Callable[[str, list[str]], str | None] | None = None,
                            ) -> tuple[list[str], list[str], Table]:
    """Short description texts per label from a category tree file.

    The first column names the label; the other columns of the row describe it (e.g.
    taxonomy.csv: 一级分类, 二级分类, 三级分类). Rows of labels the data does not have and
    cells reading 其他 ("other") are ignored. Each row becomes one short training example.
    ``relabel(label, [二级分类, 三级分类])`` moves a row to another label space (e.g. the
    list's categories through the label map); ``labels`` then names labels of that space.
    """
    table = read_table(path)
    first, rest = table.columns[0], table.columns[1:]
    texts, owners = [], []
    for row in table.rows:
        label: str | None = (row.get(first) or "").strip()
        words = [(row.get(c) or "").strip() for c in rest]
        if relabel is not None and label:
            label = relabel(label, words)
        if label not in labels:
            continue
        words = [w for w in words if w and w not in ("其他", "其它")]
        if words:
            texts.append(" ".join(dict.fromkeys(words)))
            owners.append(str(label))
    return texts, owners, table
