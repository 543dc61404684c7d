"""The post-deploy hook that turns on ReportBatchItemFailures, against moto's Lambda and SQS."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fathom import deploy_hooks
from testing import REGION

SETTINGS = Path(__file__).resolve().parents[2] / "zappa_settings.json"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="fathom-ZappaLambdaExecutionRole",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        yield SimpleNamespace(
            lam=boto3.client("lambda", region_name=REGION), sqs=boto3.client("sqs", region_name=REGION), role=role
        )


def make_function(aws: SimpleNamespace, name: str) -> str:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("fathom/lambda_handler.py", "def handler(event, context):\n    return None\n")
    return aws.lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=aws.role,
        Handler="fathom.lambda_handler.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]


def make_queue(aws: SimpleNamespace, name: str) -> str:
    url = aws.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "720"})["QueueUrl"]
    return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def zappa_style_mapping(aws: SimpleNamespace, function_arn: str, queue_arn: str, batch_size: int, window: int) -> str:
    """What Zappa's SqsEventSource.add creates: no FunctionResponseTypes, no ScalingConfig."""
    return aws.lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName=function_arn,
        BatchSize=batch_size,
        Enabled=True,
        MaximumBatchingWindowInSeconds=window,
    )["UUID"]


def stage_config(ingest_arn: str, default_arn: str) -> dict[str, Any]:
    return {
        "events": [
            {
                "function": "fathom.lambda_handler.handler",
                "event_source": {"arn": ingest_arn, "batch_size": 1000, "batch_window": 5, "maximum_concurrency": 4},
            },
            {"function": "fathom.lambda_handler.handler", "event_source": {"arn": default_arn, "batch_size": 10}},
            # Schedules and non-SQS sources are not the hook's business.
            {"name": "x", "function": "fathom.lambda_handler.handler", "expression": "rate(1 minute)"},
            {"function": "fathom.lambda_handler.handler", "event_source": {"arn": "arn:aws:s3:::bucket"}},
        ]
    }


def stub_cli(aws: SimpleNamespace, name: str, config: dict[str, Any]) -> SimpleNamespace:
    """The attributes of ZappaCLI the hook reads."""
    return SimpleNamespace(zappa=SimpleNamespace(lambda_client=aws.lam), lambda_name=name, stage_config=config)


def test_the_hook_enables_partial_batch_responses_once_and_touches_nothing_else(aws, capsys):
    worker_arn = make_function(aws, "fathom-production-worker")
    other_arn = make_function(aws, "someone-else")
    ingest_arn, default_arn = make_queue(aws, "fathom-ingest"), make_queue(aws, "fathom-default")
    ingest_uuid = zappa_style_mapping(aws, worker_arn, ingest_arn, 1000, 5)
    default_uuid = zappa_style_mapping(aws, worker_arn, default_arn, 10, 0)
    # Another function on the same queue, and this function on a queue the stage does not name.
    foreign_uuid = zappa_style_mapping(aws, other_arn, ingest_arn, 10, 0)
    stray_uuid = zappa_style_mapping(aws, worker_arn, make_queue(aws, "unrelated"), 10, 0)
    cli = stub_cli(aws, "fathom-production-worker", stage_config(ingest_arn, default_arn))

    first = deploy_hooks.enable_partial_batch_responses(cli)

    assert [s["uuid"] for s in first] == [ingest_uuid, default_uuid]
    ingest = aws.lam.get_event_source_mapping(UUID=ingest_uuid)
    assert ingest["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert ingest["ScalingConfig"] == {"MaximumConcurrency": 4}
    # Zappa's own settings stay as they were.
    assert (ingest["BatchSize"], ingest["MaximumBatchingWindowInSeconds"]) == (1000, 5)
    default = aws.lam.get_event_source_mapping(UUID=default_uuid)
    assert default["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert not default.get("ScalingConfig")
    for uuid in (foreign_uuid, stray_uuid):
        assert not aws.lam.get_event_source_mapping(UUID=uuid).get("FunctionResponseTypes")
    assert "set FunctionResponseTypes, ScalingConfig" in capsys.readouterr().out

    # Idempotent: the second run (every `zappa update`) changes nothing.
    second = deploy_hooks.enable_partial_batch_responses(cli)
    assert [s["changed"] for s in second] == [{}, {}]
    assert "already configured" in capsys.readouterr().out

    # A later Zappa update of the mapping (batch size / window / enabled) keeps the setting.
    aws.lam.update_event_source_mapping(
        UUID=ingest_uuid, FunctionName=worker_arn, BatchSize=500, Enabled=True, MaximumBatchingWindowInSeconds=3
    )
    assert aws.lam.get_event_source_mapping(UUID=ingest_uuid)["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_missing_mapping_fails_the_deploy_loudly(aws):
    make_function(aws, "fathom-production-worker")
    ingest_arn, default_arn = make_queue(aws, "fathom-ingest"), make_queue(aws, "fathom-default")
    cli = stub_cli(aws, "fathom-production-worker", stage_config(ingest_arn, default_arn))
    with pytest.raises(deploy_hooks.DeployHookError, match="found 0"):
        deploy_hooks.enable_partial_batch_responses(cli)


def test_a_setting_that_does_not_take_fails_loudly(aws, monkeypatch):
    worker_arn = make_function(aws, "fathom-production-worker")
    ingest_arn, default_arn = make_queue(aws, "fathom-ingest"), make_queue(aws, "fathom-default")
    zappa_style_mapping(aws, worker_arn, ingest_arn, 1000, 5)
    zappa_style_mapping(aws, worker_arn, default_arn, 10, 0)
    monkeypatch.setattr(aws.lam, "update_event_source_mapping", lambda **kwargs: {})  # silently ignored
    with pytest.raises(deploy_hooks.DeployHookError, match="did not take"):
        deploy_hooks.enable_partial_batch_responses(
            stub_cli(aws, "fathom-production-worker", stage_config(ingest_arn, default_arn))
        )


def test_mappings_still_being_created_are_waited_for():
    states = iter(["Creating", "Creating", "Enabled", "Updating", "Enabled"])
    mapping = {
        "UUID": "u1",
        "EventSourceArn": "arn:aws:sqs:us-east-1:1:q",
        "FunctionArn": "arn:aws:lambda:x:1:function:f",
    }

    class Client:
        exceptions = SimpleNamespace(ResourceInUseException=type("ResourceInUse", (Exception,), {}))
        updated: dict[str, Any] = {}

        def get_function(self, FunctionName):
            return {"Configuration": {"FunctionArn": mapping["FunctionArn"]}}

        def get_paginator(self, name):
            return SimpleNamespace(paginate=lambda **kw: [{"EventSourceMappings": [mapping]}])

        def get_event_source_mapping(self, UUID):
            return {**mapping, **self.updated, "State": next(states)}

        def update_event_source_mapping(self, UUID, **changes):
            self.updated = changes

    sleeps: list[float] = []
    config = {"events": [{"function": "h", "event_source": {"arn": "arn:aws:sqs:us-east-1:1:q"}}]}
    summary = deploy_hooks.configure_sqs_mappings(Client(), "f", config, log=lambda _: None, sleep=sleeps.append)
    assert summary[0]["changed"] == {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    assert sleeps == [5.0, 5.0, 5.0]


def test_the_command_line_runs_the_hook_for_an_existing_deployment(aws, tmp_path, capsys):
    worker_arn = make_function(aws, "fathom-production-worker")
    ingest_arn, default_arn = make_queue(aws, "fathom-ingest"), make_queue(aws, "fathom-default")
    uuid = zappa_style_mapping(aws, worker_arn, ingest_arn, 1000, 5)
    zappa_style_mapping(aws, worker_arn, default_arn, 10, 0)
    settings = json.loads(SETTINGS.read_text())
    for event, arn in zip(settings["production_worker"]["events"], (ingest_arn, default_arn), strict=True):
        event["event_source"]["arn"] = arn
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings))

    assert deploy_hooks.main(["production_worker", "--settings", str(path)]) == 0
    assert aws.lam.get_event_source_mapping(UUID=uuid)["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "fathom-production-worker <- " in capsys.readouterr().out


def test_the_real_settings_name_the_hook_and_the_sqs_sources():
    settings = json.loads(SETTINGS.read_text())
    worker = settings["production_worker"]
    assert worker["callbacks"]["post"] == "fathom.deploy_hooks.enable_partial_batch_responses"
    sources = deploy_hooks.sqs_event_sources(worker)
    assert [s["arn"].rsplit(":", 1)[1] for s in sources] == ["fathom-ingest", "fathom-default"]
    # AWS: a batch above 10 needs a window of at least 1 s; the window is at most 300 s.
    for source in sources:
        assert source["batch_size"] <= 10 or 1 <= source["batch_window"] <= 300
    # The queue visibility timeout (>= 6x this, documented in docs/deploy.md) must fit SQS's 12 h cap.
    assert 6 * worker["timeout_seconds"] <= 43200
