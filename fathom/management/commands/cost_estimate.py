from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fathom import costs
from fathom.costs import HOURS_PER_MONTH, CostModelError, Estimate, LineItem, Model

GROUPS = {
    "alb": "Front door: Application Load Balancer",
    "apigw_rest": "Front door instead: API Gateway REST API",
    "apigw_http": "Front door instead: API Gateway HTTP API",
    "web": "Web function",
    "worker": "Worker function and SQS",
    "commands": "Commands function",
    "waf": "WAF (--waf)",
    "free": "Always-free allowances (--free-tier)",
}
CLICKHOUSE_GROUPS = {
    "ch_cloud": "Analytics store: ClickHouse Cloud, Scale tier (AWS us-east-1)",
    "ch_ec2": "Analytics store instead: self-hosted ClickHouse on EC2",
}
# Flags that override a ClickHouse input (dest -> input name).
CLICKHOUSE_OVERRIDES = {
    "retention_months": "ch_retention_months",
    "ch_bytes_per_event": "ch_bytes_per_event",
    "ch_events_per_unit": "ch_events_per_unit",
    "ch_replicas": "ch_replicas",
}
# Flags that override a model input (dest -> input name); None keeps the documented default.
OVERRIDES = {
    "avg_ms": "avg_ms",
    "rejected_ms": "rejected_ms",
    "bytes_per_hit": "bytes_per_hit",
    "new_connection_share": "new_connection_share",
    "message_bytes": "message_bytes",
    "worker_fixed_ms": "worker_fixed_ms",
    "worker_per_hit_ms": "worker_per_hit_ms",
    "command_ms": "command_ms",
    "waf_rules": "waf_rules",
    "attack_accepted_share": "attack_accepted_share",
    "ban_seconds": "ban_seconds",
}


class Command(BaseCommand):
    help = (
        "Print the monthly AWS cost of zappa_settings.json for N collector hits (ALB vs API Gateway REST and "
        "HTTP APIs), the analytics store on ClickHouse (Cloud or self-hosted), the denial-of-wallet ceiling its "
        "concurrency and timeout allow, and optionally what an attack night adds with and without the WAF bans. "
        "Prices: settings.AWS_PRICES."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--hits-per-month", type=float, required=True, help="collector hits a month")
        parser.add_argument("--settings-file", default=str(settings.BASE_DIR / "zappa_settings.json"))
        parser.add_argument("--web-stage", default="production")
        parser.add_argument("--worker-stage", default="production_worker")
        parser.add_argument("--commands-stage", default="production_commands")
        parser.add_argument("--avg-ms", type=float, help="average ms of an accepted collector request on Lambda")
        parser.add_argument("--rejected-ms", type=float, help="average ms of a 403/429 answer on Lambda")
        parser.add_argument("--bytes-per-hit", type=float, help="ALB bytes processed per hit (in + out)")
        parser.add_argument("--new-connection-share", type=float, help="share of hits opening a connection")
        parser.add_argument("--message-bytes", type=float, help="bytes of one queued hit on SQS")
        parser.add_argument("--worker-fixed-ms", type=float, help="ms per worker invocation, fixed part")
        parser.add_argument("--worker-per-hit-ms", type=float, help="ms per hit in a worker batch")
        parser.add_argument("--command-ms", type=float, help="ms per scheduled command run")
        parser.add_argument("--waf", action="store_true", help="add a WAF web ACL to the month")
        parser.add_argument(
            "--waf-rules", type=float, help="rules in the web ACL (default 2, 3 with the collector IP sets)"
        )
        parser.add_argument("--free-tier", action="store_true", help="subtract the always-free allowances")
        parser.add_argument("--attack-multiplier", type=float, help="attack traffic = this x the normal rate")
        parser.add_argument("--attack-hours", type=float, default=8.0, help="length of the attack (default 8)")
        parser.add_argument("--waf-blocked-share", type=float, help="share of attack requests the WAF blocks")
        parser.add_argument("--attack-accepted-share", type=float, help="share of attack requests queued (202)")
        parser.add_argument("--ban-seconds", type=float, help="seconds until an attacking address is banned")
        parser.add_argument("--retention-months", type=float, help="ClickHouse: months of events kept (default 24)")
        parser.add_argument("--ch-bytes-per-event", type=float, help="ClickHouse: compressed bytes per stored event")
        parser.add_argument("--ch-events-per-unit", type=float, help="ClickHouse: hits a month per compute unit")
        parser.add_argument("--ch-replicas", type=float, help="ClickHouse: replicas (of each shard)")

    def handle(self, *args: Any, **options: Any) -> None:
        hits = options["hits_per_month"]
        if hits < 0:
            raise CommandError(f"--hits-per-month must be >= 0, not {hits:g}")
        path = options["settings_file"]
        prices = settings.AWS_PRICES
        if missing := costs.check_prices(prices):
            raise CommandError(f"AWS_PRICES entries without value/unit/source/date: {', '.join(missing)}")
        try:
            model = costs.build_model(
                costs.load_zappa_settings(path),
                label=str(path).rsplit("/", 1)[-1],
                web_stage=options["web_stage"],
                worker_stage=options["worker_stage"],
                commands_stage=options["commands_stage"],
                overrides={name: options[dest] for dest, name in OVERRIDES.items()},
            )
            est = costs.estimate_month(model, prices, hits, waf=options["waf"], free_tier=options["free_tier"])
            ch_inputs = costs.clickhouse_inputs({name: options[dest] for dest, name in CLICKHOUSE_OVERRIDES.items()})
            ch_items = costs.estimate_clickhouse(ch_inputs, prices, hits)
            attack = None
            if options["attack_multiplier"] is not None:
                attack = costs.estimate_attack(
                    model,
                    prices,
                    hits,
                    multiplier=options["attack_multiplier"],
                    hours=options["attack_hours"],
                    blocked_share=options["waf_blocked_share"],
                    ban_base_minutes=settings.AUTO_BAN_BASE_MINUTES,
                    ban_max_days=settings.AUTO_BAN_MAX_DAYS,
                )
                free = options["free_tier"]
                months = [costs.estimate_month(model, prices, hits, waf=w, free_tier=free) for w in (False, True)]
        except CostModelError as exc:
            raise CommandError(str(exc))

        out = self.stdout.write
        out(f"Monthly AWS cost of {hits:,.0f} collector hits (us-east-1, {HOURS_PER_MONTH}-hour month, even spread)")
        out(
            f"Settings: {path}; stages web={model.web.stage}, worker={model.worker.stage}, "
            f"commands={model.commands.stage}"
        )
        for fn in (model.web, model.worker, model.commands):
            if not fn.found:
                out(f"  note: stage {fn.stage!r} is not in the file: Zappa's defaults are assumed for it")
        self._items(est)
        self._totals(est)
        self._clickhouse(est, ch_inputs, ch_items)
        self._ceiling(model, prices)
        if attack:
            self._attack(model, attack, *months)
        self._assumptions(model, est, ch_inputs)
        self._prices(prices)

    # ---- sections --------------------------------------------------------------------------------

    def _items(self, est: Estimate) -> None:
        out = self.stdout.write
        out("")
        out(f"{'Line item':<52} {'quantity':>18}  {'unit price (USD)':<34} {'USD/month':>11}")
        for group, title in GROUPS.items():
            items = [i for i in est.items if i.group == group]
            if items:
                out(f"{title}")
                for item in items:
                    out(_row(item))

    def _totals(self, est: Estimate) -> None:
        out = self.stdout.write
        totals = est.totals()
        doors = {"alb": "ALB", "apigw_rest": "REST API", "apigw_http": "HTTP API"}
        out("")
        out(f"{'Totals (USD/month)':<30}" + "".join(f"{name:>14}" for name in doors.values()))
        rows = [
            ("front door", None),
            ("web function", "web"),
            ("worker + SQS", "worker"),
            ("commands function", "commands"),
            ("WAF", "waf"),
            ("free tier", "free"),
        ]
        for label, group in rows:
            if group and not any(i.group == group for i in est.items):
                continue
            cells = []
            for door in doors:
                cost = est.cost(door) if group is None else est.cost(group)
                cells.append("n/a" if group == "waf" and door == "apigw_http" else f"{cost:,.2f}")
            out(f"  {label:<28}" + "".join(f"{c:>14}" for c in cells))
        out(f"  {'TOTAL':<28}" + "".join(f"{'n/a' if t is None else f'{t:,.2f}':>14}" for t in totals.values()))
        even = {door: costs.alb_break_even(est, door) for door in ("apigw_http", "apigw_rest")}
        if all(even.values()):
            out(
                f"  the ALB costs less than the HTTP API above {even['apigw_http'] / 1e6:,.1f}M hits a month, "
                f"than the REST API above {even['apigw_rest'] / 1e6:,.1f}M (first-tier prices)"
            )
        if totals["apigw_http"] is None:
            out("  (HTTP APIs cannot have a WAF web ACL attached: no total with --waf)")

    def _clickhouse(self, est: Estimate, inputs: dict[str, Any], items: list[LineItem]) -> None:
        out = self.stdout.write
        size = costs.sizing(inputs, est.hits)
        out("")
        out(
            f"Analytics store on ClickHouse (ANALYTICS_URL=clickhouse://; not in the totals above): "
            f"{size['stored_events']:,.0f} events stored ({inputs['ch_retention_months'].value:g} months), "
            f"{size['stored_bytes'] / 1e9:,.1f} GB compressed"
        )
        for group, title in CLICKHOUSE_GROUPS.items():
            out(title)
            for item in (i for i in items if i.group == group):
                out(_row(item))
        alb = est.totals()["alb"]
        for group, label in (("ch_cloud", "ClickHouse Cloud"), ("ch_ec2", "self-hosted ClickHouse")):
            store = sum(i.cost for i in items if i.group == group)
            out(f"  {label + ' (USD/month)':<50} {store:>11,.2f}   with the ALB layout above: {alb + store:,.2f}")

    def _ceiling(self, model: Model, prices: dict[str, Any]) -> None:
        out = self.stdout.write
        web = model.web
        cap = costs.concurrency_cap(web)
        slow = costs.ceiling(model, prices, web)
        fast = costs.ceiling(model, prices, web, costs.billed_ms(model.v("rejected_ms")))
        fast_rps = fast["requests"] / costs.SECONDS_PER_MONTH
        alb_hour = costs.lcu_hours(model, prices, fast_rps * 3600, 3600)[0] * costs.price(prices, "alb_lcu_hour")
        out("")
        out("Denial-of-wallet ceiling of the web function (every concurrency slot busy all month)")
        out(f"  concurrency {cap.value:g} ({cap.source}) x timeout {web.timeout_s.value:g} s ({web.timeout_s.source})")
        out(f"  x memory {web.memory_mb.value:g} MB ({web.memory_mb.source})")
        out(
            f"  requests all hanging until the timeout: {slow['gbs']:,.0f} GB-s + {slow['requests']:,.0f} requests"
            f" = {slow['month']:,.2f} USD/month ({slow['hour']:,.2f} USD/hour)"
        )
        out(
            f"  cheap {fast['seconds'] * 1000:g} ms rejections filling every slot ({fast_rps:,.0f} req/s): "
            f"{fast['month']:,.2f} USD/month ({fast['hour']:,.2f} USD/hour) + ALB LCUs {alb_hour:,.2f} USD/hour"
        )
        out("  (duration is capped by the concurrency; request and LCU charges only by the attacker's request rate)")

    def _attack(self, model: Model, attack: costs.Attack, plain: Estimate, waf_month: Estimate) -> None:
        out = self.stdout.write
        nw, ww = attack.windows["without_waf"], attack.windows["with_waf"]
        out("")
        out(
            f"Attack: {attack.multiplier:g} x the normal hourly rate for {attack.hours:g} h on top of the normal "
            f"traffic ({attack.requests:,.0f} extra requests), through the ALB"
        )
        out(
            f"  normal month: {plain.totals()['alb']:,.2f} USD without a WAF, {waf_month.totals()['alb']:,.2f} USD "
            f"with the WAF web ACL (ACL + rules + inspection of every request)"
        )
        out(
            f"  average web concurrency during the attack: {nw.concurrency_needed:,.2f} without the WAF, "
            f"{ww.concurrency_needed:,.2f} with it (cap {costs.concurrency_cap(model.web).value:g})"
        )
        if nw.served_share < 1:
            out(
                f"  over the cap: {1 - nw.served_share:.1%} of all requests, legit ones too, get 503 from the ALB "
                "(throttled requests are not billed by Lambda)"
            )
        accepted = model.inputs["attack_accepted_share"]
        out(f"  attack requests accepted and queued: {accepted.value:.1%} ({accepted.source})")
        for title, items, total in (
            (
                "Extra cost of the night without WAF bans (every request reaches the web function; rejected "
                "ones are cheap 403/429s and queue nothing)",
                attack.without_waf,
                attack.cost_without_waf,
            ),
            (
                f"Extra cost of the night with WAF bans: {attack.blocked_share.value:.2%} of the attack blocked at "
                f"the WAF ({attack.blocked_share.source})",
                attack.with_waf,
                attack.cost_with_waf,
            ),
        ):
            out(title)
            for item in items:
                out(_row(item))
            out(f"  {'total':<50} {'':>18}  {'':<34} {total:>11,.2f}")

    def _assumptions(self, model: Model, est: Estimate, ch_inputs: dict[str, Any]) -> None:
        out = self.stdout.write
        out("")
        out("Assumptions (value: where it came from)")
        for fn, role in ((model.web, "web"), (model.worker, "worker"), (model.commands, "commands")):
            out(f"  {role} function = stage {fn.stage}{'' if fn.found else ' (absent: Zappa defaults)'}")
            for label, value in (
                ("memory MB", fn.memory_mb),
                ("timeout s", fn.timeout_s),
                ("reserved concurrency", costs.concurrency_cap(fn)),
                ("architecture", fn.architecture),
                ("keep-warm pings a month", fn.keep_warm_per_month),
            ):
                shown = f"{value.value:,.0f}" if isinstance(value.value, float) else value.value
                out(f"    {label}: {shown}: {value.source}")
            for queue in fn.queues:
                out(f"    SQS {queue['arn']}:")
                for key in ("batch_size", "batch_window", "pollers"):
                    out(f"      {key} {queue[key].value}: {queue[key].source}")
            for name, expression, per_month in fn.schedules:
                out(f"    schedule {name}: {expression} = {per_month:,.0f} runs a month")
        usage = costs.worker_usage(model, est.hits, costs.SECONDS_PER_MONTH)
        queue = costs.ingest_queue(model.worker)
        pollers = queue["pollers"].value if queue else costs.SQS_POLLERS
        out(
            f"  worker: {usage['records_per_batch']:,.1f} hits per invocation (the batch window's arrivals over "
            f"{pollers} pollers, 1 to batch_size), {usage['worker_ms']:,} ms each"
        )
        for name, value in (*model.inputs.items(), *ch_inputs.items()):
            shown = value.value
            if isinstance(shown, float):
                shown = f"{shown:,.0f}" if shown.is_integer() else f"{shown:.4g}"
            out(f"  {name} = {shown}: {value.source}")
        out(
            "  not counted: dashboard and API traffic, data transfer out, CloudWatch logs, the database, Redis, "
            "NAT gateways, tiers past the first (Lambda 6B GB-s, SQS 100B requests)"
        )

    def _prices(self, prices: dict[str, Any]) -> None:
        out = self.stdout.write
        out("")
        out("Prices (settings.AWS_PRICES, us-east-1)")
        for name, entry in prices.items():
            out(f"  {name:<40} {_num(entry['value']):>14}  {entry['unit']} [{entry['date']}; {entry['source']}]")


def _num(value: float) -> str:
    """Prices as written in the table: 0.0225, 3.50, 0.0000166667, 25."""
    if float(value).is_integer():
        return f"{value:,.0f}"
    text = f"{value:.10f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.split(".")[1]))


def _money(value: float) -> str:
    return f"{value:,.2f}" if float(value).is_integer() else _num(value)


def _row(item: LineItem) -> str:
    unit_price = f"{_money(item.price)} per {'1M ' if item.per == 1e6 else ''}{_unit(item)}"
    quantity = f"{item.quantity:,.0f}" if abs(item.quantity) >= 100 else f"{item.quantity:,.2f}"
    return f"  {item.label:<50} {quantity:>18}  {unit_price:<34} {item.cost:>11,.2f}"


UNITS = {
    "ALB-hours": "ALB-hour",
    "LCU-hours": "LCU-hour",
    "ACL-months": "ACL-month",
    "rule-months": "rule-month",
    "unit-hours": "unit-hour",
    "TB-months": "TB-month",
    "GB-months": "GB-month",
    "endpoint-AZ-hours": "endpoint-AZ-hour",
    "instance-hours": "instance-hour",
}


def _unit(item: LineItem) -> str:
    return item.unit if item.per == 1e6 else UNITS.get(item.unit, item.unit)
