"""Units, the error type and the sourced value shared by the cost model's modules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
GIB = 1024**3
SQS_BATCH = 10  # messages per ReceiveMessage / DeleteMessageBatch
SQS_POLLERS = 5  # Lambda's concurrent SQS pollers per event source at rest
SQS_LONG_POLL_SECONDS = 20
LAMBDA_FULL_VCPU_MB = 1769  # memory at which a function gets one whole vCPU (less memory, a share)
ACCOUNT_CONCURRENCY = 1000  # AWS's default concurrency quota per region, when no reserved concurrency


class CostModelError(ValueError):
    """Bad settings file, stage, expression or input; the message says which."""


@dataclass(frozen=True)
class Value:
    """A model input and where it came from."""

    value: Any
    source: str


def _positive_number(value: Any, *, zero: bool = False) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value >= 0 if zero else value > 0)
