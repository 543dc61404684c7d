"""Post-deploy steps Zappa cannot do itself.

Zappa creates the worker's SQS event source mappings but never sets `FunctionResponseTypes`,
so Lambda would ignore the `batchItemFailures` the worker returns and delete the whole batch,
failed messages included. `enable_partial_batch_responses` turns ReportBatchItemFailures on for
each SQS event source of the stage (and applies `maximum_concurrency` as the mapping's
ScalingConfig, so the SQS pollers stay under the reserved concurrency instead of being
throttled). It runs as Zappa's `callbacks.post` after every `zappa deploy` / `zappa update`
(which run it after `schedule()` has created or updated the mappings), and by hand for an
existing deployment:

    python -m fathom.deploy_hooks production_worker [--settings zappa_settings.json]

It only touches mappings whose function is this stage's function and whose source is one of
this stage's SQS ARNs; it is idempotent (a second run changes nothing) and fails loudly: a
missing mapping or a setting that did not take raises, so the deploy does not look green.

Zappa loads this file by path as a top-level module (`deploy_hooks`), so it imports nothing
from the project and only boto3 (through the Zappa CLI object) at run time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

PARTIAL_BATCH = "ReportBatchItemFailures"
SETTLED_STATES = {"Enabled", "Disabled"}


class DeployHookError(RuntimeError):
    """The post-deploy configuration could not be applied or verified."""


def sqs_event_sources(stage_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The `event_source` dicts of the stage's events that are SQS queues."""
    sources = []
    for event in stage_config.get("events") or []:
        source = event.get("event_source")
        if isinstance(source, dict) and str(source.get("arn", "")).startswith("arn:aws:sqs:"):
            sources.append(source)
    return sources


def function_name_of(function_arn: str) -> str:
    """'arn:aws:lambda:REGION:ACCT:function:NAME[:QUALIFIER]' (or a bare name) -> NAME."""
    parts = function_arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return function_arn


def find_mapping(client: Any, function_name: str, queue_arn: str) -> dict[str, Any]:
    """The one mapping from `queue_arn` to this function; anything else is an error."""
    function_arn = client.get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
    paginator = client.get_paginator("list_event_source_mappings")
    found = [
        mapping
        for page in paginator.paginate(FunctionName=function_arn, EventSourceArn=queue_arn)
        for mapping in page["EventSourceMappings"]
        # AWS filters already; checked again so nothing else is ever touched.
        if mapping.get("EventSourceArn") == queue_arn and function_name_of(mapping["FunctionArn"]) == function_name
    ]
    if len(found) != 1:
        raise DeployHookError(
            f"expected exactly one event source mapping from {queue_arn} to {function_name}, found {len(found)}"
            " (did `zappa schedule` fail? Zappa logs 'Unable to add event source' and carries on)"
        )
    return found[0]


def wait_settled(
    client: Any, uuid: str, timeout: float = 180.0, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Mappings just created or updated are 'Creating'/'Updating' and refuse changes until settled."""
    deadline = time.monotonic() + timeout
    while True:
        mapping = client.get_event_source_mapping(UUID=uuid)
        if mapping.get("State", "Enabled") in SETTLED_STATES:
            return mapping
        if time.monotonic() > deadline:
            raise DeployHookError(f"event source mapping {uuid} still {mapping.get('State')} after {timeout:.0f} s")
        sleep(5.0)


def wanted_changes(mapping: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    response_types = list(mapping.get("FunctionResponseTypes") or [])
    if PARTIAL_BATCH not in response_types:
        changes["FunctionResponseTypes"] = [*response_types, PARTIAL_BATCH]
    maximum = source.get("maximum_concurrency")
    if maximum is not None:
        maximum = int(maximum)
        if not 2 <= maximum <= 1000:
            raise DeployHookError(f"maximum_concurrency must be 2..1000 (AWS), not {maximum}")
        if (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency") != maximum:
            changes["ScalingConfig"] = {"MaximumConcurrency": maximum}
    return changes


def configure_sqs_mappings(
    client: Any,
    function_name: str,
    stage_config: dict[str, Any],
    *,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Apply and verify the settings on every SQS mapping of the stage. Returns one summary per
    mapping: {"uuid", "queue_arn", "changed": {...}}."""
    summaries = []
    for source in sqs_event_sources(stage_config):
        queue_arn = source["arn"]
        mapping = wait_settled(client, find_mapping(client, function_name, queue_arn)["UUID"], sleep=sleep)
        changes = wanted_changes(mapping, source)
        if changes:
            for attempt in range(12):
                try:
                    client.update_event_source_mapping(UUID=mapping["UUID"], **changes)
                    break
                except client.exceptions.ResourceInUseException:
                    if attempt == 11:
                        raise
                    sleep(5.0)
            mapping = wait_settled(client, mapping["UUID"], sleep=sleep)
        missing = wanted_changes(mapping, source)
        if missing:
            raise DeployHookError(f"event source mapping {mapping['UUID']} ({queue_arn}) did not take {missing}")
        log(
            f"{function_name} <- {queue_arn}: "
            + (f"set {', '.join(sorted(changes))}" if changes else "already configured")
            + f" (FunctionResponseTypes={mapping.get('FunctionResponseTypes')},"
            f" ScalingConfig={mapping.get('ScalingConfig') or {}})"
        )
        summaries.append({"uuid": mapping["UUID"], "queue_arn": queue_arn, "changed": changes})
    return summaries


def enable_partial_batch_responses(cli: Any) -> list[dict[str, Any]]:
    """Zappa `callbacks.post`: `cli` is the ZappaCLI after deploy/update (stage already loaded)."""
    return configure_sqs_mappings(cli.zappa.lambda_client, cli.lambda_name, cli.stage_config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enable ReportBatchItemFailures on a deployed stage's SQS mappings.")
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. production_worker")
    parser.add_argument("--settings", default="zappa_settings.json", help="the Zappa settings file")
    args = parser.parse_args(argv)

    from zappa.cli import ZappaCLI  # deploy machines have Zappa; the Lambda zip does not

    cli = ZappaCLI()
    cli.api_stage = args.stage
    cli.load_settings(args.settings)  # same stage merge, function name and AWS session as zappa itself
    try:
        enable_partial_batch_responses(cli)
    except DeployHookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
