"""The drill's summary on the console."""

from __future__ import annotations

from typing import Any

from bench.drill.analysis import auto_notes
from bench.drill.config import ACCEPTED
from bench.drill.fmt import ms, secs, share
from bench.drill.phases import Drill


def print_summary(drill: Drill, a: dict[str, Any]) -> None:
    base, att = a["baseline"], a["attack"]
    print()
    for phase, groups in drill.results["cpu_groups"].items():
        print(f"  CPU cores {phase}: " + ", ".join(f"{g} {v:.2f}" for g, v in groups.items()))
    print("== legit traffic ==")
    for name, s in (("baseline", base), ("attack", att)):
        others = {k: v for k, v in s["counts"].items() if k != ACCEPTED}
        print(
            f"  {name:<8} {s['requests']:>6} requests  success {share(s['ok'], s['requests'])}  "
            f"p50 {ms(s['p50'])} ms  p95 {ms(s['p95'])} ms  p99 {ms(s['p99'])} ms  {others or ''}"
        )
    for group, g in a["groups"].items():
        s = g["attack"]
        print(f"    {group:<9} under attack: {s['requests']:>5} requests  success {share(s['ok'], s['requests'])}")
    print("== attack patterns ==")
    for name, p in a["patterns"].items():
        counts = ", ".join(f"{k} {share(v, p['requests'])}" for k, v in sorted(p["counts"].items()))
        print(f"  {name:<6} {p['requests']:>6} requests: {counts}")
        for ip, v in p["ips"].items():
            print(
                f"      {ip:<12} flagged {secs(v['flag_poll'])} banned {secs(v['ban_poll'])} "
                f"(row {secs(v['ban_db'])}) first 403 {secs(v['first_403'])} score {v['score']} "
                f"accepted {v['accepted']} rows {v['events']} rows after ban {v['events_after_ban']}"
            )
    print("== customer stats ==")
    for s in a["sites"]:
        print(
            f"  {s['domain']:<20} HourlyTotal pv {s['hourly_pv']:>6}  legit 202 pv {s['legit_pv']:>6}  "
            f"attack rows {s['attack_pv']:>5}  unexplained {s['unexplained']}"
        )
    cost = drill.results["cost"]
    print("== cost ==")
    for mode in ("banned", "accepted"):
        c = cost[mode]
        print(
            f"  {mode:<8} {c['rps']:7.0f} req/s  p50 {ms(c['p50'])} ms  p95 {ms(c['p95'])} ms  "
            f"gunicorn CPU {c['cpu_ms']:.2f} ms/request"
        )
    print(f"  ingest CPU per accepted hit: {cost['ingest_cpu_ms']:.2f} ms")
    print("== false positives ==")
    for row in a["false_positive_rows"]:
        print(f"  {row['ip']} ({row['group']}): score {row['score']} {row['status']} {row['reasons']}")
    print(
        f"  legit flagged {a['false_flags'] or 0}, legit banned {a['false_bans'] or 0}, other {a['stray_flags'] or 0}"
    )
    print("== targets ==")
    for name, value, ok in a["targets"]:
        print(f"  [{'MET' if ok else 'MISSED'}] {name}: {value}")
    print("== notes ==")
    for note in auto_notes(drill, a):
        print(f"  - {note}")
    print(f"  5xx: {a['five_xx']}, tracebacks in logs: {a['tracebacks']}")
