"""What the drill's results mean: legit traffic before and under attack, per attacker what it got
and when it was flagged and banned, what reached the customers' stats, the cost of a banned
request, the targets, and the automatic notes."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from typing import Any

from bench.common import percentile
from bench.drill.config import (
    ACCEPTED,
    BODY_IPS,
    BOT_IPS,
    CUSTOMER_SITES,
    ERROR,
    FALLBACK_BANNED_IP,
    FLOOD_IP,
    GROUPS,
    SPOOF_IP,
    SWEEP_IP,
)
from bench.drill.fmt import ms_val, share
from bench.drill.phases import Drill
from bench.drill.traffic import category
from bench.drill.world import utc_ts


def legit_summary(records: list[tuple]) -> dict[str, Any]:
    counts = Counter(category(r[3], r[4]) for r in records)
    latencies = [r[2] for r in records if r[3] != ERROR]
    lags = [max(0.0, r[1] - r[0]) for r in records]
    return {
        "requests": len(records),
        "ok": counts.get(ACCEPTED, 0),
        "counts": dict(counts),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
        "lag_p95": percentile(lags, 95),
        "kinds": dict(Counter(r[5] for r in records)),
    }


def timeline(records: list[tuple], t0: float, t1: float, step: float) -> list[dict[str, Any]]:
    rows = []
    t = t0
    while t < t1 - 0.5:
        part = [r for r in records if t <= r[0] < t + step]
        summary = legit_summary(part)
        rows.append({"from": t - t0, "to": min(t + step, t1) - t0, **summary})
        t += step
    return rows


def analyse(drill: Drill) -> dict[str, Any]:
    r = drill.results
    t = r["times"]
    legit = r["legit"]
    base_records = [x for x in legit if t["base"] <= x[0] < t["attack"]]
    attack_records = [x for x in legit if t["attack"] <= x[0] < t["end"]]
    a: dict[str, Any] = {
        "baseline": legit_summary(base_records),
        "attack": legit_summary(attack_records),
        "timeline": timeline(attack_records, t["attack"], t["end"], 5.0),
    }
    users = drill.legit_users()
    legit_ips = {user["ip"] for user in users}
    # Bans and flags as they were when the attack phase ended (the return phase changes them).
    bans = {row[0].removesuffix("/32"): utc_ts(row[1]) for row in r["bans_attack"]}
    flags_attack = {row[0]: row for row in r["flags_attack"]}
    flags = {row[0]: row for row in r["flags"]}
    a["groups"] = {
        group: {
            phase: legit_summary([x for x in records if users[x[6]]["group"] == group])
            for phase, records in (("baseline", base_records), ("attack", attack_records))
        }
        for group in GROUPS
        if any(user["group"] == group for user in users)
    }
    group_of = {user["ip"]: user["group"] for user in users}
    minutes = (t["end"] - t["base"]) / 60
    a["group_hits_per_minute"] = {
        group: sum(1 for x in legit if users[x[6]]["group"] == group and t["base"] <= x[0] < t["end"]) / minutes
        for group in a["groups"]
    }
    a["false_positive_rows"] = [
        {
            "ip": ip,
            "group": group_of[ip],
            "score": flags[ip][1],
            "status": flags[ip][2],
            "reasons": reasons_of(flags[ip][3]),
            "first_seen": rel(utc_ts(flags[ip][4]), t["attack"]),
            "banned": ip in bans,
        }
        for ip in sorted(flags)
        if ip in legit_ips
    ]
    a["bans"] = bans
    a["false_flags"] = sorted(ip for ip in flags if ip in legit_ips)
    a["false_bans"] = sorted(ip for ip in bans if ip in legit_ips)
    attacker_ips = {FLOOD_IP, SPOOF_IP, SWEEP_IP, *BOT_IPS, *BODY_IPS, FALLBACK_BANNED_IP}
    a["stray_flags"] = sorted(ip for ip in flags if ip not in legit_ips and ip not in attacker_ips)

    # Attack events: path /attack-<pattern>-<lane> -> the lane's IP.
    events_by_lane: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _site, path, _name, ts in r["attack_events"]:
        match = re.fullmatch(r"/attack-(\w+)-(\d+)", path)
        key = (match.group(1), int(match.group(2))) if match else ("?", 0)
        events_by_lane[key].append(utc_ts(ts) or 0.0)

    patterns = {}
    for name, lanes in r["attacks"].items():
        counts: Counter[str] = Counter()
        for lane in lanes:
            counts.update(lane["counts"])
        ips = sorted({lane["ip"] for lane in lanes})
        per_ip = {}
        for ip in ips:
            ip_lanes = [lane for lane in lanes if lane["ip"] == ip]
            ban_at = bans.get(ip)
            first_403 = min((lane["first"]["403"] for lane in ip_lanes if "403" in lane["first"]), default=None)
            accepted_after_ban = sum(
                1 for lane in ip_lanes for x in lane["accepted_at"] if ban_at is not None and x > ban_at
            )
            events = [x for lane in ip_lanes for x in events_by_lane.get((name, lane["lane"]), [])]
            row = flags_attack.get(ip)
            per_ip[ip] = {
                "flag_poll": rel(r["flag_seen"].get(ip), t["attack"]),
                "flag_db": rel(utc_ts(row[4]) if row else None, t["attack"]),
                "ban_poll": rel(r["ban_seen"].get(ip), t["attack"]),
                "ban_db": rel(ban_at, t["attack"]),
                "first_403": rel(first_403, t["attack"]),
                "score": row[1] if row else None,
                "status": row[2] if row else "",
                "reasons": reasons_of(row[3]) if row else {},
                "accepted": sum(lane["counts"].get(ACCEPTED, 0) for lane in ip_lanes),
                "accepted_after_ban": accepted_after_ban,
                "events": len(events),
                "events_after_ban": sum(1 for x in events if ban_at is not None and x >= ban_at),
            }
        patterns[name] = {
            "requests": sum(lane["requests"] for lane in lanes),
            "counts": dict(counts),
            "ips": per_ip,
            "events": sum(v["events"] for v in per_ip.values()),
            "events_after_ban": sum(v["events_after_ban"] for v in per_ip.values()),
            "events_never_banned": sum(v["events"] for ip, v in per_ip.items() if ip not in bans),
        }
    a["patterns"] = patterns
    ret = r.get("return")
    if ret:
        events = [x for lane in ret["lanes"] for x in events_by_lane.get(("return", lane["lane"]), [])]
        first_403 = min((lane["first"]["403"] for lane in ret["lanes"] if "403" in lane["first"]), default=None)
        a["return"] = {
            **{k: ret[k] for k in ("requests", "counts", "seconds", "flag_before", "flag_after", "ban_after")},
            "events": len(events),
            "first_403": rel(first_403, ret["start"]),
            "rebanned": ret["ban_after"] is not None,
        }

    # Customer stats: HourlyTotal pageviews per site against legit pageviews answered 202 + attack rows.
    id_domain = {pk: domain for domain, pk in drill.site_ids.items()}
    sid_domain = dict(drill.sites)
    legit_pv: Counter[str] = Counter()
    legit_ev: Counter[str] = Counter()
    for rec in legit:
        if category(rec[3], rec[4]) != ACCEPTED:
            continue
        domain = sid_domain[users[rec[6]]["sid"]]
        if rec[5] == "pageview":
            legit_pv[domain] += 1
        elif rec[5] == "event":
            legit_ev[domain] += 1
    attack_pv: Counter[str] = Counter()
    for site_id, _path, name, _ts in r["attack_events"]:
        if name == "pageview":
            attack_pv[id_domain.get(site_id, "?")] += 1
    hourly = {id_domain.get(row[0], "?"): (int(row[1] or 0), int(row[2] or 0)) for row in r["hourly"]}
    sites = []
    for domain in CUSTOMER_SITES:
        pv, ev = hourly.get(domain, (0, 0))
        sites.append(
            {
                "domain": domain,
                "hourly_pv": pv,
                "legit_pv": legit_pv[domain],
                "attack_pv": attack_pv[domain],
                "unexplained": pv - legit_pv[domain] - attack_pv[domain],
                "hourly_ev": ev,
                "legit_ev": legit_ev[domain],
            }
        )
    a["sites"] = sites

    cost = r["cost"]
    a["cost_ratio_cpu"] = cost["banned"]["cpu_ms"] / cost["accepted"]["cpu_ms"] if cost["accepted"]["cpu_ms"] else 0
    a["cost_ratio_p50"] = cost["banned"]["p50"] / cost["accepted"]["p50"] if cost["accepted"]["p50"] else 0
    a["cost_ratio_rps"] = cost["accepted"]["rps"] / cost["banned"]["rps"] if cost["banned"]["rps"] else 0

    server_log, worker_log = r["server_log"], r["worker_log"]
    a["tracebacks"] = server_log.count("Traceback") + worker_log.count("Traceback")
    a["server_errors"] = [line for line in server_log.splitlines() if " ERROR " in line or "CRITICAL" in line][:10]
    a["worker_errors"] = [line for line in worker_log.splitlines() if " ERROR " in line or "CRITICAL" in line][:10]
    a["worker_dropped_banned"] = sum(
        int(m.group(1)) for m in re.finditer(r"dropped (\d+) hits from addresses banned", worker_log)
    )
    a["auto_ban_lines"] = len(re.findall(r"auto-banned", server_log))
    a["five_xx"] = {
        "legit": sum(1 for x in legit if x[3] >= 500),
        "attack": sum(p["counts"].get("5xx", 0) for p in patterns.values()),
        "cost": sum(cost[m]["counts"].get("5xx", 0) for m in ("banned", "accepted")),
    }

    legit_rate = a["attack"]["ok"] / a["attack"]["requests"] if a["attack"]["requests"] else 0.0
    after_ban = sum(p["events_after_ban"] for p in patterns.values())
    a["targets"] = [
        ("legit success under attack >= 99 %", share(a["attack"]["ok"], a["attack"]["requests"]), legit_rate >= 0.99),
        (
            "zero attack hits counted once banned",
            f"{after_ban} Event rows with ts after the IP's ban",
            after_ban == 0,
        ),
        (
            "banned request <= 1/3 of an accepted one (gunicorn CPU per request)",
            f"{a['cost_ratio_cpu']:.2f} ({ms_val(cost['banned']['cpu_ms'])} vs {ms_val(cost['accepted']['cpu_ms'])})",
            a["cost_ratio_cpu"] <= 1 / 3,
        ),
    ]
    return a


def reasons_of(value: Any) -> dict[str, int]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def rel(value: float | None, t0: float) -> float | None:
    return None if value is None else value - t0


def auto_notes(drill: Drill, a: dict[str, Any]) -> list[str]:
    notes = []
    att = a["attack"]
    failed = {k: v for k, v in att["counts"].items() if k != ACCEPTED}
    if att["requests"] and att["ok"] / att["requests"] < 0.99:
        notes.append(
            f"Legit success missed 99 %: the failed legit requests were {failed}. Errors/timeouts mean the two sync "
            "workers were saturated (a closed-loop flood keeps both busy until it is banned, and still costs a "
            "request each after); 403/429/202-dropped mean a legit visitor was misjudged."
        )
    elif failed:
        notes.append(f"Legit requests that were not accepted under attack: {failed}.")
    for name, p in a["patterns"].items():
        for ip, v in p["ips"].items():
            if v["events_after_ban"]:
                notes.append(
                    f"{name} {ip}: {v['events_after_ban']} hits written with a timestamp after the ban row "
                    f"({v['accepted_after_ban']} answers 202 after it): requests served by a worker whose ban "
                    "snapshot was up to 1 s old (bans.CHECK_EVERY), and ingested before the Celery worker's own "
                    "snapshot saw the ban."
                )
            if ip not in a["bans"] and v["events"]:
                notes.append(
                    f"{name} {ip} was never banned (score {v['score']}, reasons {v['reasons'] or '-'}) and got "
                    f"{v['events']} hits into the stats."
                )
    traffic_s = drill.baseline + drill.duration
    for row in a["false_positive_rows"]:
        reasons = row["reasons"]
        per_minute = a["group_hits_per_minute"].get(row["group"], 0.0)
        why = []
        if "rate" in reasons:
            why.append(
                f"`rate` (security/guards.py, after_collector_hit) counts hits per visitor hash (site + IP + "
                f"User-Agent) per minute; people behind one NAT address with the same browser build are one visitor "
                f"hash, here ~{per_minute:.0f} hits/min from the group against DETECT_HUMAN_MAX_PER_MINUTE"
            )
        if "many_sites" in reasons:
            why.append(
                "`many_sites` counts distinct sites per IP per hour: a carrier NAT address reaches more than "
                "DETECT_MAX_SITES_PER_HOUR customer sites within minutes, once per hour"
            )
        other = sorted(set(reasons) - {"rate", "many_sites"})
        if other:
            why.append(f"also {', '.join(other)}")
        projection = ""
        if row["score"] and set(reasons) == {"rate"} and not row["banned"]:
            minutes = 100 / row["score"] * traffic_s / 60
            projection = (
                f" At this pace (score {row['score']} in {traffic_s:.0f} s) it reaches 100 in ~{minutes:.0f} min."
            )
        notes.append(
            f"False positive: legit {GROUPS[row['group']]} ({row['ip']}) flagged, score {row['score']}"
            f"{', BANNED' if row['banned'] else ''}: {'; '.join(why)}.{projection} Points add up in the FlaggedIP "
            "row (security/detectors.py, flag()) with no decay while the row lives (FLAG_EXPIRY_DAYS, renewed by "
            "every flag), so a busy NAT address crosses AUTO_BAN_SCORE sooner or later, and the auto-ban then "
            "blocks everyone behind it."
        )
    ret = a.get("return")
    if ret and not ret["rebanned"]:
        notes.append(
            f"The returning flood IP was not banned again ({ret['events']} more hits written in {ret['seconds']:g} s, "
            "then 429s only): expire_bans() marks the FlaggedIP row of an expired /32 ban `dismissed` "
            "(security/services.py, expire_bans), and flag() auto-bans only rows with status `open` "
            "(security/detectors.py, `should_ban = row.status == FlaggedIP.Status.OPEN and ...`). As every new "
            "flag renews the row's 7-day expiry, a persistent attacker is never auto-banned again and the x4 "
            "escalation of auto_ban_duration() is never reached; it keeps getting "
            f"COLLECTOR_SITE_RATE={drill.results['knobs']['COLLECTOR_SITE_RATE']} hits per site into the stats."
        )
    body = a["patterns"].get("body", {}).get("ips", {})
    quiet = [ip for ip, v in body.items() if ip not in a["bans"] and not v["score"]]
    if quiet:
        notes.append(
            f"Body attackers {', '.join(quiet)} were never flagged: 400/413 answers do not feed any detector "
            "(only 429s do), so a client that stays under COLLECTOR_RATE can send malformed bodies forever. They "
            "cost a cheap request each and write nothing."
        )
    django = drill.results["cost"].get("django")
    if django:
        counter = django["banned"][0] - django["banned_no_metrics"][0]
        cost = drill.results["cost"]
        without = (cost["banned"]["cpu_ms"] - counter) / cost["accepted"]["cpu_ms"]
        notes.append(
            f"Of a banned request's {cost['banned']['cpu_ms']:.2f} ms in gunicorn, {django['banned'][0]:.2f} ms is "
            f'Django, and {counter:.2f} ms of that is the traffic counter (`metrics.record("banned")` in '
            "security/middleware.py, BanMiddleware: one Redis pipeline round trip per banned request). Counting "
            "banned requests in process memory and adding them to Redis once a second would take the ratio from "
            f"{a['cost_ratio_cpu']:.2f} to about {without:.2f}; the rest is gunicorn's own per-request work."
        )
    if a["cost_ratio_cpu"] > 1 / 3:
        notes.append(
            f"A banned request costs {a['cost_ratio_cpu']:.2f} of an accepted one in gunicorn CPU: the fixed cost "
            "of a sync worker request (accept, HTTP parsing, WSGI environ, Django's handler and middleware chain) "
            "dominates a bare 403. What would fix it: answer banned IPs before Python (the WAF IP set that "
            "security.waf syncs, or the proxy), not a faster 403 in Django."
        )
    if any(s["unexplained"] for s in a["sites"]):
        notes.append(
            "Some customer sites' HourlyTotal pageviews differ from legit 202 pageviews + attack rows: a lost or "
            "double-counted hit, or hits still queued when the rows were counted (see the drain line)."
        )
    if not notes:
        notes.append("Nothing unexpected.")
    return notes
