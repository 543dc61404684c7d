"""Attack drill for the public collector (POST /api/event): does it keep counting honestly?

Sets up its own world (MariaDB database bench_attack, Redis db 11, gunicorn with 2 sync workers,
one Celery worker on queues ingest+default that writes the hits during the run, TRUSTED_PROXY_HOPS=1
with this script playing the ALB: every request carries `X-Forwarded-For: <client ip>` as its last
entry), then:

1. baseline: legit traffic only - 300 client IPs from 198.18.0.0/15 with browser User-Agents, each a
   human (a pageview every 8-20 s, sometimes a custom event after it and an engagement report
   before the next one), plus two groups of people behind one NAT address each (an office on one
   Chrome build, a mobile carrier's CGNAT address); ~35 req/s in total;
2. attack: the same legit traffic plus, at the same time,
   (a) flood: one IP, two connections as fast as they go;
   (b) spoof: one IP, one connection as fast as it goes, random fake X-Forwarded-For entries left
       of its real address (some of them legit visitors' addresses);
   (c) sweep: one IP posting to every customer site in turn, up to 20 req/s;
   (d) bots: 5 IPs with python-requests / HeadlessChrome User-Agents, up to 4 req/s each;
   (e) bodies: 3 IPs sending oversized (>4 KiB, with Content-Length or chunked) and malformed
       bodies, one at up to 20 req/s and two at up to 4 req/s;
   every attack hit has a path /attack-<pattern>-<lane>, so its rows can be found afterwards;
3. cost: the Celery worker paused, two connections as fast as they go, first as the banned flood
   IP, then as fresh legit IPs (one request each), to compare what a banned and an accepted
   request cost the web tier (gunicorn workers' CPU per request, latency, throughput), plus the
   Django part of each measured in one process without gunicorn;
4. return: the flood IP's auto-ban is expired (its expiry moved to the past, then `manage.py
   expire_bans`, as the scheduler would an hour later) and it floods again: is it banned again?
5. drains the queue, counts what reached the database (Event rows with attack paths, before and
   after each attacker's ban; HourlyTotal pageviews against the legit pageviews answered 202),
   prints the report and writes docs/attack-results.md (a hand-written block between the
   analysis markers is kept);
6. stops gunicorn and the worker, drops bench_attack, flushes Redis db 11.

FlaggedIP and Ban are polled once a second during the run (first flag / ban time per IP).

    .venv/bin/python bench/attack.py                  # ~4 min: baseline 30 s, attack 45 s, cost 2 x 8 s
    .venv/bin/python bench/attack.py --quick          # ~2 min: baseline 10 s, attack 20 s, cost 2 x 3 s
    .venv/bin/python bench/attack.py --duration 60    # a longer attack phase
    .venv/bin/python bench/attack.py --quiet-wait 300 # first wait (bounded) for the shared box to be idle

The machine is shared: the report shows the CPU each process group used, including `other` (work
that is not the drill's), and whether MariaDB was running another database's queries.
Nothing here tunes a threshold: the app runs with its defaults (or whatever the environment sets,
printed in the report).

This file is the command; the drill lives in bench/drill/: config (its world's constants),
traffic (legit and attack requests), procstat (CPU accounting), world (database, queue, poller),
phases (set-up and the phases), analysis, report (the Markdown) and console (the summary).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, machine, wait_for_quiet
from bench.drill.analysis import analyse
from bench.drill.config import DB_NAME, RESULTS_MD
from bench.drill.console import print_summary
from bench.drill.phases import Drill
from bench.drill.report import report_lines, write_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="attack phase seconds (default 45, --quick 20)")
    parser.add_argument("--baseline", type=float, help="baseline phase seconds (default 30, --quick 10)")
    parser.add_argument("--users", type=int, help="legit client IPs (default 300, --quick 200)")
    parser.add_argument("--cost-seconds", type=float, help="seconds per cost measurement (default 8, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="short phases, to try the script (~1.5 min)")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help=f"markdown report (default {RESULTS_MD})")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="first wait up to this many seconds for the box to be idle (load < 0.8, no other MariaDB queries)",
    )
    parser.add_argument("--no-nat", action="store_true", help="no legit people behind shared (NAT) addresses")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the markdown report")
    args = parser.parse_args(argv)
    quick = args.quick
    drill = Drill(
        baseline=args.baseline or (10.0 if quick else 30.0),
        duration=args.duration or (20.0 if quick else 45.0),
        users=args.users or (200 if quick else 300),
        cost_seconds=args.cost_seconds or (3.0 if quick else 8.0),
        gap=(8.0, 20.0),
        nat=not args.no_nat,
        return_seconds=5.0 if quick else 10.0,
        command=shlex.join([".venv/bin/python", "bench/attack.py", *(argv if argv is not None else sys.argv[1:])]),
        output=args.output,
    )
    if min(drill.baseline, drill.duration, drill.cost_seconds) <= 0 or drill.users <= 0:
        parser.error("durations and --users must be positive")
    if drill.baseline + drill.duration > 600:
        parser.error("baseline + duration is capped at 600 s")
    drill.results["box_at_start"] = str(wait_for_quiet(args.quiet_wait, threshold=0.8, own_db=DB_NAME))
    log(f"box at the start: {drill.results['box_at_start']}")
    drill.started = time.monotonic()  # the time budget of the drains counts from here
    drill.results["machine"] = machine()
    try:
        drill.run()
    finally:
        drill.cleanup()
    a = analyse(drill)
    print_summary(drill, a)
    if not args.no_write:
        write_markdown(drill.output, report_lines(drill, a))
        log(f"report written to {drill.output}")
    log(f"total {time.monotonic() - drill.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
