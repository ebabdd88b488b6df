"""What deputy liaison shows outside its API: the printable monthly list (每月问题清单, HTML in
Chinese, print it to paper or PDF from the browser) and the Prometheus figures of deputy work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Environment, select_autoescape
from prometheus_client import Gauge

from hotline.directory import Directory
from hotline.mongo import Doc

LEVEL_NAMES = {"national": "全国人大代表", "provincial": "省人大代表", "municipal": "市人大代表",
               "district": "区人大代表"}
KIND_NAMES = {"concentrated": "集中反映", "repeated": "反复投诉", "hard": "疑难问题"}

SUBMISSIONS = Gauge("hotline_deputy_submissions", "Problems deputies submitted, all time, by deputy level and street.",
                    ["level", "street"])
CLOSED_ON_TIME = Gauge("hotline_deputy_closed_on_time_ratio",
                       "Deputy tickets closed and replied within the deputy lane's limit, of those closed.",
                       ["level", "street"])
SATISFACTION = Gauge("hotline_deputy_satisfaction_ratio",
                     "Deputies' ratings 满意 or 基本满意, of those rated, by deputy level and street.",
                     ["level", "street"])


def export(rows: Sequence[Mapping[str, Any]]) -> None:
    """Set the gauges from the figures (labels: level, one of five; street, a unit id of the directory)."""
    for row in rows:
        labels = (row["level"], row["street"])
        SUBMISSIONS.labels(*labels).set(row["submissions"])
        CLOSED_ON_TIME.labels(*labels).set(row["on_time_rate"] or 0.0)
        SATISFACTION.labels(*labels).set(row["satisfaction_rate"] or 0.0)


TEMPLATE = Environment(autoescape=select_autoescape(default=True)).from_string("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{ month }} 每月问题清单 · {{ deputy.name }}</title>
<style>body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:2em}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #444;padding:.4em;text-align:left}
@media print{button{display:none}}</style></head><body>
<h1>{{ month }} 每月问题清单</h1>
<p>代表：{{ deputy.name }}（{{ level }}） 选区：{{ street }}{% if community %} {{ community }}{% endif %}</p>
<p>本清单由区12345热线根据本月工单数据生成，列出选区内集中反映、反复投诉和疑难问题，供代表了解民情、领办跟踪。</p>
{% if items %}<table><thead><tr><th>序号</th><th>类型</th><th>社区</th><th>问题类别</th><th>问题概述</th>
<th>涉及工单</th><th>领办</th></tr></thead><tbody>
{% for i in items %}<tr><td>{{ loop.index }}</td><td>{{ kinds[i.kind] }}</td><td>{{ names(i.community) }}</td>
<td>{{ i.category }}</td><td>{{ i.summary }}</td><td>{{ i.tickets }}</td>
<td>{% if i.item_id in adopted %}已领办{% endif %}</td></tr>{% endfor %}
</tbody></table>{% else %}<p>本月选区内无需列入清单的问题。</p>{% endif %}
<p>生成时间：{{ published }}{% if version %}　清单标准版本：{{ version }}{% endif %}</p></body></html>""")


def monthly_html(deputy: Doc, monthly: Doc, directory: Directory) -> str:
    def names(unit_id: str) -> str:
        unit = directory.units.get(unit_id)
        return unit.name if unit is not None else unit_id

    return TEMPLATE.render(month=monthly["month"], deputy=deputy, level=LEVEL_NAMES.get(deputy.get("level", ""), ""),
                           street=names(monthly.get("street", "")),
                           community=names(monthly["community"]) if monthly.get("community") else "",
                           items=monthly["items"], adopted=set(monthly.get("adopted", [])), kinds=KIND_NAMES,
                           names=names, published=str(monthly.get("published_at", ""))[:19],
                           version=monthly.get("policy_version", ""))
