"""The CSV export: a zip of one CSV per panel (plus the headline metrics and the timeseries)."""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from decimal import Decimal
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard import report_data
from dashboard.report_data import HEADLINE, VALUE, Report
from dashboard.views.stats.query import parse_query, problem
from sites.models import Site

# What makes a spreadsheet read a text cell as a formula (OWASP's list, plus the full-width signs
# some spreadsheets also accept), once it has skipped what comes before: spaces of any kind (NBSP,
# ideographic), line breaks, tabs and invisible format characters such as a zero-width space.
_FORMULA_SIGNS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_SKIPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (values come from visitors' URLs):
    text whose first visible character is a formula sign, or that starts with a tab or carriage
    return, gets a leading quote. Numbers stay numbers."""
    if not isinstance(value, str):
        return value
    visible = next((char for char in value if unicodedata.category(char) not in _SKIPPED_CATEGORIES), "")
    if visible in _FORMULA_SIGNS or value[:1] in ("\t", "\r"):
        return "'" + value
    return value


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _amount(cents: float) -> Decimal:
    """Cents as a plain decimal amount, as a number and not text: 123456 -> 1234.56 (no
    thousands separators, which would make a spreadsheet read it as a string; a Decimal, so a
    negative amount is not taken for a formula by _cell)."""
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def export_files(report: Report) -> dict[str, str]:
    """The CSV files of a report: name -> text. Numbers as the Stats API gives them (seconds,
    percents, cents as a plain decimal amount: 1234.56)."""
    files = {}
    metric_rows = [[m.key, m.value, m.change if report.compare else ""] for m in report.metrics]
    files["visitors.csv"] = _csv(["metric", "value", "change"], metric_rows)
    header = ["date", *HEADLINE]
    rows = [[row["date"], *(row[m] for m in HEADLINE)] for row in report.series]
    files["timeseries.csv"] = _csv(header, rows)
    for panel in report.panels:
        spec = panel.spec
        header = [spec.property.short, *spec.columns]
        rows = [
            [row.label, *(_amount(row.numbers[c]) if c == VALUE else row.numbers[c] for c in spec.columns)]
            for row in panel.rows
        ]
        files[f"{spec.key}.csv"] = _csv(header, rows)
    return files


def export_response(request: HttpRequest, site: Site) -> HttpResponse:
    try:
        query = parse_query(request.GET, site)
        report = report_data.build_report(
            site,
            query.period,
            list(query.filters),
            compare=query.compare,
            interval=query.interval,
            limit=report_data.EXPORT_LIMIT,
        )
    except (ValueError, SuspiciousOperation) as exc:
        return render(
            request,
            "dashboard/stats/not_found.html",
            {"message": f"Cannot export this view: {problem(exc)}", "title": "Bad request"},
            status=400,
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in export_files(report).items():
            archive.writestr(name, text)
    filename = f"{site.domain}_{query.period.start.isoformat()}_{query.period.end.isoformat()}.zip"
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
