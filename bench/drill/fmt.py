"""How the drill writes its figures (the Markdown report, the console summary and the log)."""

from __future__ import annotations

import math
from typing import Any


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "n/a"


def ms_val(value: float) -> str:
    return f"{value:.2f} ms"


def ip_list(ips: list[str]) -> str:
    return f"{len(ips)} ({', '.join(ips[:20])}{', ...' if len(ips) > 20 else ''})" if ips else "0"


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} s"


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out
