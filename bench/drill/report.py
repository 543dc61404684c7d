"""The Markdown report the drill writes (docs/attack-results.md by default): setup, targets, legit
traffic, attack patterns, customers' stats, cost, false positives, errors and the automatic notes;
a hand-written analysis between the analysis markers is kept when the file is rewritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drill.analysis import auto_notes
from bench.drill.config import (
    ACCEPTED,
    ANALYSIS_END,
    ANALYSIS_START,
    COST_SITE,
    CUSTOMER_SITES,
    FLOOD_IP,
    GROUPS,
    PATTERNS,
    REPORT_DATE,
)
from bench.drill.fmt import ip_list, ms, secs, share, table
from bench.drill.phases import Drill
from bench.drill.procstat import CPU_GROUPS


def report_lines(drill: Drill, a: dict[str, Any]) -> list[str]:
    r = drill.results
    knobs = r["knobs"]
    m = r["machine"]
    cost = r["cost"]
    base, att = a["baseline"], a["attack"]
    lines = [
        "# Attack drill: the collector under attack",
        "",
        f"Date: {REPORT_DATE}. Command (from the repository root):",
        "",
        "```",
        drill.command,
        "```",
        "",
        "Written by `bench/attack.py` (numbers and the automatic notes; the hand-written analysis at the end "
        "is kept when the script rewrites this file).",
        "",
        "## Setup",
        "",
        f"- Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, MariaDB {m['mariadb']}.",
        "- Server: gunicorn `fathom.wsgi -w 2 -k sync`, DEBUG=0, `TRUSTED_PROXY_HOPS=1` (the drill plays the ALB: "
        "the client IP is the last `X-Forwarded-For` entry), Redis db 11 as cache and broker, MariaDB database "
        "`bench_attack`.",
        "- Writes: a real Celery worker (`celery -A fathom worker -Q ingest,default -c 1 --pool solo`) consumed "
        "the queue during the run; the drill waited for the queue to drain before counting rows.",
        f"- App knobs (defaults, not tuned): {', '.join(f'{k}={v}' for k, v in knobs.items())}.",
        f"- Sites: {len(CUSTOMER_SITES)} customer sites (`customer0..7.example`); legit traffic on customer0/1/2 "
        f"(50/30/20 %); `{COST_SITE}` for the cost phase only.",
        f"- Legit: {drill.users} client IPs from 198.18.0.0/15, 11 browser UAs, a pageview every "
        f"{drill.gap[0]:g}-{drill.gap[1]:g} s per visitor, 15 % followed by a custom event 1-4 s later, 30 % "
        "with an engagement report before the next pageview; Origin matches the site; open loop (the schedule "
        "does not wait for answers), a fresh connection per request (sync workers close)."
        + (
            f" Plus people sharing one address each, with the same behaviour: {GROUPS['office']}; {GROUPS['cgnat']}."
            if drill.nat
            else ""
        ),
        f"- Phases: baseline {drill.baseline:g} s (legit only), attack {drill.duration:g} s (legit + all five "
        f"patterns at once), then the cost phase (2 x {drill.cost_seconds:g} s, Celery worker paused), then the "
        f"returning flood ({drill.return_seconds:g} s).",
        f"- Box at the start: {r['box_at_start']}. Whole-box CPU busy: baseline "
        f"{100 * r['box_busy']['baseline']:.0f} %, attack "
        f"{100 * r['box_busy']['attack']:.0f} % (load generator, gunicorn, worker, MariaDB and Redis share the "
        "2 cores).",
        "",
        "CPU in cores (of 2) per process group; `other` is work on the box that is not the drill's:",
        "",
        *table(
            ["phase", *CPU_GROUPS],
            [
                [phase, *(f"{r['cpu_groups'][phase][group]:.2f}" for group in CPU_GROUPS)]
                for phase in ("baseline", "attack")
            ],
        ),
        "",
        "Attack patterns (all start together when the attack phase starts; attack hits use paths "
        "`/attack-<pattern>-<lane>`):",
        "",
    ]
    lines += [f"- {name}: {text}" for name, text in PATTERNS.items()]
    lines += [
        "",
        "## Targets",
        "",
        *table(
            ["target", "result", "met"],
            [[name, value, "yes" if ok else "**no**"] for name, value, ok in a["targets"]],
        ),
        "",
        "## Legit traffic: baseline vs under attack",
        "",
        *table(
            ["phase", "requests", "202 accepted", "success", "other answers", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [
                [
                    name,
                    s["requests"],
                    s["ok"],
                    share(s["ok"], s["requests"]),
                    ", ".join(f"{k}: {v}" for k, v in sorted(s["counts"].items()) if k != ACCEPTED) or "-",
                    ms(s["p50"]),
                    ms(s["p95"]),
                    ms(s["p99"]),
                    ms(s["max"]),
                ]
                for name, s in (("baseline", base), ("attack", att))
            ],
        ),
        "",
        "By group (under attack; baseline success in brackets):",
        "",
        *table(
            ["group", "requests", "success", "p50 ms", "p95 ms", "other answers"],
            [
                [
                    GROUPS[group],
                    g["attack"]["requests"],
                    f"{share(g['attack']['ok'], g['attack']['requests'])} "
                    f"({share(g['baseline']['ok'], g['baseline']['requests'])})",
                    ms(g["attack"]["p50"]),
                    ms(g["attack"]["p95"]),
                    ", ".join(f"{k}: {v}" for k, v in sorted(g["attack"]["counts"].items()) if k != ACCEPTED) or "-",
                ]
                for group, g in a["groups"].items()
            ],
        ),
        "",
        f"Legit rate: {base['requests'] / drill.baseline:.1f} req/s baseline, {att['requests'] / drill.duration:.1f} "
        f"req/s under attack. Load-generator lag (send time after schedule) p95: {ms(base['lag_p95'])} ms baseline, "
        f"{ms(att['lag_p95'])} ms under attack. Latency is measured from connect to the end of the answer.",
        "",
        "Legit traffic during the attack, per 5 s:",
        "",
        *table(
            ["window (s after attack start)", "requests", "success", "p50 ms", "p95 ms", "max ms"],
            [
                [
                    f"{row['from']:.0f}-{row['to']:.0f}",
                    row["requests"],
                    share(row["ok"], row["requests"]),
                    ms(row["p50"]),
                    ms(row["p95"]),
                    ms(row["max"]),
                ]
                for row in a["timeline"]
            ],
        ),
        "",
        "## Attack patterns: what they got",
        "",
    ]
    cols = ["403", "429", "202-dropped", "400", "413", "404", ACCEPTED, "5xx", "error", "other"]
    rows = []
    for name, p in a["patterns"].items():
        n = p["requests"]
        rate = f"{n / drill.duration:.0f}"
        rows.append([name, n, rate, *[share(p["counts"].get(c, 0), n) if p["counts"].get(c) else "-" for c in cols]])
    lines += table(["pattern", "requests", "req/s", *cols], rows)
    lines += [
        "",
        "Per attacker IP (times relative to the attack start; flag/ban from the 1 s poll of FlaggedIP/Ban, "
        "with the row's own timestamp in brackets; first 403 as seen by the attacker):",
        "",
    ]
    ip_rows = []
    for name, p in a["patterns"].items():
        for ip, v in p["ips"].items():
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(v["reasons"].items())) if v["reasons"] else "-"
            ip_rows.append(
                [
                    name,
                    ip,
                    f"{secs(v['flag_poll'])} ({secs(v['flag_db'])})",
                    f"{secs(v['ban_poll'])} ({secs(v['ban_db'])})",
                    secs(v["first_403"]),
                    v["score"] if v["score"] is not None else "-",
                    v["status"] or "-",
                    reasons,
                    v["accepted"],
                    v["accepted_after_ban"],
                    v["events"],
                    v["events_after_ban"],
                ]
            )
    lines += table(
        [
            "pattern",
            "IP",
            "flagged",
            "banned",
            "first 403",
            "score",
            "status",
            "reasons (count)",
            "202 accepted",
            "202 after ban",
            "Event rows",
            "rows after ban",
        ],
        ip_rows,
    )
    flood = a["patterns"]["flood"]["ips"].get(FLOOD_IP, {})
    lines += [
        "",
        f"Flood IP {FLOOD_IP}: first FlaggedIP row {secs(flood.get('flag_poll'))} after the attack started "
        f"(row timestamp {secs(flood.get('flag_db'))}), Ban row {secs(flood.get('ban_poll'))} "
        f"(row timestamp {secs(flood.get('ban_db'))}), first 403 at the attacker {secs(flood.get('first_403'))}.",
        f"{r['polls']} polls ({r['poll_errors']} failed); MariaDB was running another database's queries in "
        f"{r['foreign_busy']} of them. "
        f"The worker dropped {a['worker_dropped_banned']} queued hits of addresses banned after they were queued "
        "(its log).",
        "",
        "## What reached the customers' stats",
        "",
        *table(
            [
                "site",
                "HourlyTotal pageviews",
                "legit pageviews answered 202",
                "attack pageview rows (all phases)",
                "unexplained",
                "HourlyTotal events",
                "legit custom events answered 202",
            ],
            [
                [
                    s["domain"],
                    s["hourly_pv"],
                    s["legit_pv"],
                    s["attack_pv"],
                    s["unexplained"],
                    s["hourly_ev"],
                    s["legit_ev"],
                ]
                for s in a["sites"]
            ],
        ),
        "",
    ]
    total_attack = sum(p["events"] for p in a["patterns"].values())
    after_ban = sum(p["events_after_ban"] for p in a["patterns"].values())
    never = sum(p["events_never_banned"] for p in a["patterns"].values())
    total_legit_pv = sum(s["legit_pv"] for s in a["sites"])
    not_drained = "" if r["drain_attack"][0] else f" - NOT drained, {r['drain_attack'][2]} messages left"
    lines += [
        f"Attack Event rows of the attack phase: {total_attack} ({share(total_attack, total_attack + total_legit_pv)} "
        "of the customers' pageviews; the returning flood's rows, below, come on top), "
        f"{after_ban} with a timestamp after their IP's ban, {never} from IPs never banned. "
        f"Queue at the end of the attack: {r['queued_at_end'][0]} waiting, {r['queued_at_end'][1]} reserved; "
        f"drained {r['drain_attack'][1]:.1f} s later{not_drained}.",
        "",
        *return_lines(a),
        "## Cost of a banned request vs an accepted one",
        "",
        f"Same server, Celery worker paused (hits stay queued), two connections as fast as they go for "
        f"{drill.cost_seconds:g} s each: as the banned IP {r['cost_banned_ip']}, then as fresh legit IPs "
        f"(one request per IP) posting a valid pageview to `{COST_SITE}`.",
        "",
        *table(
            [
                "request",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "gunicorn CPU ms/request (user + kernel)",
                "box CPU busy",
                "answers",
            ],
            [
                [
                    mode,
                    cost[mode]["requests"],
                    f"{cost[mode]['rps']:.0f}",
                    ms(cost[mode]["p50"]),
                    ms(cost[mode]["p95"]),
                    f"{cost[mode]['cpu_ms']:.2f} ({cost[mode]['user_ms']:.2f} + {cost[mode]['sys_ms']:.2f})",
                    f"{100 * cost[mode]['box_busy']:.0f} %",
                    ", ".join(f"{k}: {v}" for k, v in sorted(cost[mode]["counts"].items())),
                ]
                for mode in ("banned", "accepted")
            ],
        ),
        "",
        f"Banned / accepted: gunicorn CPU {a['cost_ratio_cpu']:.2f}, p50 latency {a['cost_ratio_p50']:.2f}, "
        f"throughput {a['cost_ratio_rps']:.2f} (accepted req/s over banned req/s). An accepted hit also costs the "
        f"worker {cost['ingest_cpu_ms']:.2f} ms of CPU to ingest (one task per hit), plus MariaDB's share.",
        "",
        *profile_lines(cost),
        "## False positives",
        "",
        f"Legit IPs flagged: {ip_list(a['false_flags'])}. Legit IPs banned: {ip_list(a['false_bans'])}. "
        f"Other IPs flagged (e.g. the spoofer's fake X-Forwarded-For entries): {ip_list(a['stray_flags'])}.",
        "",
        *(
            table(
                ["legit IP", "group", "flagged (s after attack start)", "score", "status", "reasons (count)"],
                [
                    [
                        row["ip"],
                        GROUPS[row["group"]],
                        secs(row["first_seen"]),
                        row["score"],
                        row["status"] + (" (banned)" if row["banned"] else ""),
                        ", ".join(f"{k} {n}" for k, n in sorted(row["reasons"].items())),
                    ]
                    for row in a["false_positive_rows"]
                ],
            )
            if a["false_positive_rows"]
            else []
        ),
        "",
        "## Errors",
        "",
        f"5xx answers: legit {a['five_xx']['legit']}, attack {a['five_xx']['attack']}, cost phase "
        f"{a['five_xx']['cost']}. Tracebacks in the gunicorn and worker logs: {a['tracebacks']}.",
    ]
    for line in a["server_errors"] + a["worker_errors"]:
        lines.append(f"    {line[:200]}")
    lines += ["", "## Notes (automatic)", ""]
    lines += [f"- {note}" for note in auto_notes(drill, a)]
    return lines


def profile_lines(cost: dict[str, Any]) -> list[str]:
    django = cost.get("django")
    if not django:
        return []
    return [
        "The Django part alone (the same requests through `fathom.wsgi.application` in one process, no gunicorn, "
        "no socket; CPU time per request):",
        "",
        *table(
            ["request", "CPU ms/request", "answers"],
            [
                [label, f"{django[key][0]:.2f}", ", ".join(f"{k}: {v}" for k, v in django[key][1].items())]
                for key, label in (
                    ("banned", "banned"),
                    ("banned_no_metrics", "banned, traffic counter (metrics.record) stubbed out"),
                    ("accepted", "accepted (fresh IP each)"),
                )
            ],
        ),
        "",
    ]


def return_lines(a: dict[str, Any]) -> list[str]:
    ret = a.get("return")
    if not ret:
        return []
    counts = ", ".join(f"{k}: {share(v, ret['requests'])}" for k, v in sorted(ret["counts"].items()))
    again = "**no**"
    if ret["rebanned"]:
        created, expires = ret["ban_after"]
        again = f"yes (new Ban row {created:%H:%M:%S} UTC, expires {expires:%H:%M:%S} UTC)"
    return [
        "## The flood IP comes back after its auto-ban expired",
        "",
        f"The Ban row's expiry was moved to the past and `manage.py expire_bans` run (what the scheduler does an "
        f"hour after an auto-ban), then {FLOOD_IP} flooded customer0 again, 2 connections for {ret['seconds']:g} s.",
        "",
        f"- Requests: {ret['requests']} ({counts}); "
        f"{'first 403 ' + secs(ret['first_403']) + ' after it started' if ret['first_403'] is not None else 'no 403'}.",
        f"- FlaggedIP (status, score, times_banned) before: {ret['flag_before']}, after: {ret['flag_after']}.",
        f"- Banned again: {again}.",
        f"- Event rows written by the returning flood: {ret['events']}.",
        "",
    ]


def write_markdown(path: Path, lines: list[str]) -> None:
    analysis = [ANALYSIS_START, "", "## Analysis", "", "(not written yet)", "", ANALYSIS_END]
    if path.exists():
        old = path.read_text()
        start, end = old.find(ANALYSIS_START), old.find(ANALYSIS_END)
        if start != -1 and end > start:
            analysis = old[start : end + len(ANALYSIS_END)].splitlines()
    path.write_text("\n".join([*lines, "", *analysis, ""]))
