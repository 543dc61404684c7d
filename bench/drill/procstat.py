"""CPU accounting from /proc: per process, per process group (gunicorn, the Celery worker, the
load generator, MariaDB, Redis, other work on the box) and for the whole box."""

from __future__ import annotations

import os
from pathlib import Path


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_cpu_seconds(pid: int) -> float:
    return sum(proc_cpu_split(pid))


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def box_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def all_cpu() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds) of every process (read from /proc only)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


CPU_GROUPS = ("gunicorn", "celery worker", "load generator", "MariaDB", "Redis", "other")


def cpu_by_group(
    before: dict[int, tuple[str, int, float]], after: dict[int, tuple[str, int, float]], seconds: float, roots: dict
) -> dict[str, float]:
    """Cores used per group between two all_cpu() snapshots. roots: group -> pids whose trees belong to it."""

    def tree(pid: int) -> set[int]:
        found, todo = {pid}, [pid]
        while todo:
            parent = todo.pop()
            kids = [p for p, (_, ppid, _) in after.items() if ppid == parent and p not in found]
            found.update(kids)
            todo.extend(kids)
        return found

    owner: dict[int, str] = {}
    for group in ("gunicorn", "celery worker"):
        for pid in roots.get(group, ()):
            owner.update(dict.fromkeys(tree(pid), group))
    for pid in tree(os.getpid()):
        owner.setdefault(pid, "load generator")
    used = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (name, _, cpu) in after.items():
        delta = cpu - before.get(pid, (name, 0, 0.0))[2]
        group = owner.get(pid)
        if group is None:
            group = "MariaDB" if name in ("mariadbd", "mysqld") else "Redis" if name.startswith("redis") else "other"
        used[group] += max(0.0, delta)
    return {group: value / seconds for group, value in used.items()}


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0
