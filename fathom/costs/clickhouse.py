"""The analytics store on ClickHouse (ANALYTICS_URL=clickhouse://), priced two ways for a month.

Both options hold the same data and serve the same dashboards; neither is in the Lambda totals
(the Django database is not priced either).

- **ClickHouse Cloud, Scale tier** (group "ch_cloud"): compute billed per compute unit-hour (one
  unit = 8 GiB RAM and 2 vCPU of one replica), always on; compressed storage per TB-month, the
  default backup billed as storage too; the Lambdas reach it through an AWS PrivateLink interface
  endpoint (per AZ-hour and per GB processed).
- **Self-hosted on EC2** (group "ch_ec2"): shards x replicas of one instance type, three Keeper
  nodes, gp3 volumes for every replica's copy of its shard, one backup copy on S3.

Sizing (every input has its source, shown by the command):

- Stored data = hits a month x months kept x compressed bytes per event (events + sessions rows,
  measured on the bench's generated year).
- Compute: one unit per replica per `ch_events_per_unit` hits a month, at least one. A dashboard
  view scans the period's events, so the compute a site needs follows its 30-day event count. The
  default is an assumption, not a measurement of this project's queries (see its source): the
  benchmark on 2 cores missed the issue's latency targets, so a real deployment should size from its
  own p95. Many people viewing at once need more: not modelled.
- Self-hosted shards = the units a replica needs / the units one instance has, at least one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .base import HOURS_PER_MONTH, CostModelError, Value, _positive_number
from .model import price
from .month import LineItem

GB = 1e9
TB = 1e12

CLICKHOUSE_INPUTS: dict[str, tuple[float, str]] = {
    "ch_bytes_per_event": (
        82.0,
        "compressed bytes per stored event, events + sessions rows: the bench's generated year at 10M, "
        "10,020,808 events in 636.1 MB + 3,233,562 visits in 184.1 MB on chdb after merges = 81.9 B "
        "(docs/benchmarks.md §5; a third of it the random 32-character hit ids)",
    ),
    "ch_retention_months": (24, "assumed: months of events kept (nothing deletes old months today)"),
    "ch_replicas": (2, "Scale tier minimum (2+ replicas); self-hosted: 2 replicas per shard, two AZs"),
    "ch_events_per_unit": (
        10_000_000,
        "assumed hits a month per compute unit (2 vCPU): the issue's spike answered a filtered 30-day "
        "page's 8 queries over 10M stored events in 0.20-0.23 s with chdb on a 2-core machine; this "
        "project's backend took 1.2-1.5 s (p50, 16 calls) there at a load average of 1-4.7, 2.5-6.6 s at ~5 "
        "(docs/benchmarks.md §5): until it comes near the spike, size up with --ch-events-per-unit",
    ),
    "ch_backups": (1, "ClickHouse Cloud keeps one backup by default, billed as storage; self-hosted: one S3 copy"),
    "ch_insert_bytes_per_hit": (
        400,
        "assumed bytes through PrivateLink per hit: one row of ~30 columns in an insert (uncompressed "
        "RowBinary ~300 B) plus its share of the HTTP request and of query answers",
    ),
    "ch_node_units": (2, "compute units in one self-hosted instance: m6i.xlarge = 4 vCPU, 16 GiB = 2 units"),
    "ch_keeper_nodes": (3, "ClickHouse Keeper quorum: survives the loss of one node"),
    "ch_disk_headroom": (1.5, "assumed: each volume 1.5x its data, since merges write new parts before dropping old"),
    "privatelink_azs": (2, "the interface endpoint in the functions' two private subnets (section 1)"),
}


def clickhouse_inputs(overrides: Mapping[str, float | None] | None = None) -> dict[str, Value]:
    inputs = {name: Value(value, source) for name, (value, source) in CLICKHOUSE_INPUTS.items()}
    for name, value in (overrides or {}).items():
        if value is not None:
            inputs[name] = Value(value, "command line")
    for name, item in inputs.items():
        if not _positive_number(item.value, zero=name == "ch_backups"):
            raise CostModelError(f"{name} must be positive, not {item.value}")
    return inputs


def sizing(inputs: Mapping[str, Value], hits: float) -> dict[str, float]:
    v = {name: item.value for name, item in inputs.items()}
    stored_bytes = hits * v["ch_retention_months"] * v["ch_bytes_per_event"]
    units = max(1, math.ceil(hits / v["ch_events_per_unit"]))
    shards = max(1, math.ceil(units / v["ch_node_units"]))
    return {
        "stored_events": hits * v["ch_retention_months"],
        "stored_bytes": stored_bytes,
        "units_per_replica": units,
        "replicas": v["ch_replicas"],
        "shards": shards,
        "nodes": shards * v["ch_replicas"],
    }


def _item(prices: Mapping[str, Any], group: str, label: str, qty: float, unit: str, key: str) -> LineItem:
    p = price(prices, key)
    return LineItem(group, label, qty, unit, key, p, 1, qty * p)


def estimate_clickhouse(inputs: Mapping[str, Value], prices: Mapping[str, Any], hits: float) -> list[LineItem]:
    """The month's line items of both options (groups "ch_cloud" and "ch_ec2")."""
    if not _positive_number(hits, zero=True):
        raise CostModelError(f"hits per month must be a number >= 0, not {hits!r}")
    size = sizing(inputs, hits)
    v = {name: item.value for name, item in inputs.items()}
    stored_tb = size["stored_bytes"] / TB
    stored_gb = size["stored_bytes"] / GB
    replicas, units = size["replicas"], size["units_per_replica"]
    cloud = [
        _item(
            prices,
            "ch_cloud",
            f"Compute: {replicas:g} replicas x {units:g} unit{'s' * (units > 1)} (8 GiB, 2 vCPU)",
            replicas * units * HOURS_PER_MONTH,
            "unit-hours",
            "clickhouse_cloud_unit_hour",
        ),
        _item(
            prices,
            "ch_cloud",
            f"Storage: {stored_gb:,.0f} GB compressed + {v['ch_backups']:g} backup",
            stored_tb * (1 + v["ch_backups"]),
            "TB-months",
            "clickhouse_cloud_storage_tb_month",
        ),
        _item(
            prices,
            "ch_cloud",
            f"PrivateLink endpoint ({v['privatelink_azs']:g} AZs)",
            v["privatelink_azs"] * HOURS_PER_MONTH,
            "endpoint-AZ-hours",
            "privatelink_endpoint_az_hour",
        ),
        _item(
            prices,
            "ch_cloud",
            "PrivateLink data processed",
            hits * v["ch_insert_bytes_per_hit"] / GB,
            "GB",
            "privatelink_gb",
        ),
    ]
    shards, nodes = size["shards"], size["nodes"]
    ec2 = [
        _item(
            prices,
            "ch_ec2",
            f"Nodes: {shards:g} shard{'s' * (shards > 1)} x {replicas:g} replicas, m6i.xlarge",
            nodes * HOURS_PER_MONTH,
            "instance-hours",
            "ec2_m6i_xlarge_hour",
        ),
        _item(
            prices,
            "ch_ec2",
            f"Keeper nodes ({v['ch_keeper_nodes']:g} x t3.small)",
            v["ch_keeper_nodes"] * HOURS_PER_MONTH,
            "instance-hours",
            "ec2_t3_small_hour",
        ),
        _item(
            prices,
            "ch_ec2",
            f"gp3 volumes ({replicas:g} copies x {v['ch_disk_headroom']:g} x the data)",
            stored_gb * replicas * v["ch_disk_headroom"],
            "GB-months",
            "ebs_gp3_gb_month",
        ),
        _item(
            prices,
            "ch_ec2",
            f"Backup on S3 ({v['ch_backups']:g} cop{'y' if v['ch_backups'] == 1 else 'ies'})",
            stored_gb * v["ch_backups"],
            "GB-months",
            "s3_standard_gb_month",
        ),
    ]
    return cloud + ec2
