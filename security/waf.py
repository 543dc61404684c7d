"""Push the active bans to the AWS WAFv2 IP sets.

Two pairs of sets (one IPv4, one IPv6 each), one per ban scope:
- WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN hold the `all` bans, for web ACL rules that block every path;
- WAF_COLLECTOR_IPSET_V4_ARN / WAF_COLLECTOR_IPSET_V6_ARN (optional) hold the `collector` bans, for
  one rule that blocks them on the collector paths only (`collector_rule()`, docs/deploy.md).
A ban only ever goes into the pair of its scope: without the collector pair, collector bans are
enforced by the app alone and marked skipped, never pushed into the all-paths sets.

`sync_waf()` makes each configured IP set equal to the active bans of its scope and family:
get_ip_set -> compare -> update_ip_set, retrying WAF's optimistic-lock conflicts with a fresh
lock token and jittered exponential backoff. It never raises for an AWS problem: the family is
reported `failed`, its bans are marked `failed`, and the next sync (queued after every ban
change, and on the schedule) tries again.

Our own checks come first, because WAF (and moto in the tests) must never be trusted to catch
them: every network is re-validated with `ipaddress` (right family, CIDR, host bits clear, not too
wide), and each set is capped at WAF_MAX_ADDRESSES, keeping the newest bans.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils import timezone

from security.bans import COLLECTOR_PATHS
from security.models import MIN_PREFIX, Ban, Scope

log = logging.getLogger(__name__)

FAMILIES = (4, 6)
SCOPES = (Scope.ALL, Scope.COLLECTOR)
ARN_SETTING = {4: "WAF_IPSET_V4_ARN", 6: "WAF_IPSET_V6_ARN"}
COLLECTOR_ARN_SETTING = {4: "WAF_COLLECTOR_IPSET_V4_ARN", 6: "WAF_COLLECTOR_IPSET_V6_ARN"}
ARN_SETTINGS = {Scope.ALL: ARN_SETTING, Scope.COLLECTOR: COLLECTOR_ARN_SETTING}
IP_ADDRESS_VERSION = {4: "IPV4", 6: "IPV6"}
NOT_CONFIGURED = "WAF sync skipped: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN not set"
COLLECTOR_APP_ONLY = "collector-only ban, enforced by the app only: {settings} not set"
LOCK_CONFLICT = "WAFOptimisticLockException"

# Retries of WAF's optimistic-lock conflict (someone else wrote the set between our get and update).
MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.2  # seconds
BACKOFF_CAP = 3.0  # seconds

_UPDATE_CHUNK = 500  # ids per UPDATE ... WHERE id IN (...)
_MESSAGE_MAX = 300  # Ban.waf_message max_length

# arn:aws:wafv2:us-east-1:123456789012:regional/ipset/NAME/ID  (global/ipset/... for CLOUDFRONT)
_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):wafv2:(?P<region>[\w-]*):(?P<account>\d*):"
    r"(?:(?P<scope>regional|global)/)?ipset/(?P<name>[\w-]{1,128})/(?P<id>[\w-]{1,36})$"
)
_SCOPES = {"regional": "REGIONAL", "global": "CLOUDFRONT"}


class Outcome:
    SYNCED = "synced"  # the set was updated to the active bans
    UNCHANGED = "unchanged"  # the set already held exactly the active bans: no update call
    FAILED = "failed"  # AWS (or the configuration) refused; bans marked failed
    SKIPPED = "skipped"  # no ARN configured for this family


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class FamilyResult:
    version: int
    ban_scope: str = Scope.ALL  # which bans this set holds (Ban.scope)
    outcome: str = Outcome.SKIPPED
    ip_set: str = ""  # name of the IP set
    scope: str = ""
    addresses: int = 0  # addresses we want in the set (after validation and the cap)
    added: int = 0
    removed: int = 0
    synced: int = 0  # bans whose address is in the set
    invalid: int = 0  # bans skipped because their network failed validation
    over_cap: int = 0  # bans left out because the set is full
    attempts: int = 0  # get/update rounds (more than 1 after optimistic-lock conflicts)
    error: str = ""  # why the family failed
    message: str = ""  # why the family was skipped

    @property
    def label(self) -> str:
        return f"IPv{self.version}" if self.ban_scope == Scope.ALL else f"IPv{self.version} collector"

    @property
    def setting(self) -> str:
        return ARN_SETTINGS[self.ban_scope][self.version]

    def summary(self) -> str:
        """One line for the command output and the logs."""
        if self.outcome == Outcome.SKIPPED:
            return f"{self.label}: skipped ({self.message or 'not configured'})"
        text = f"{self.label}: {self.outcome}"
        if self.ip_set:
            text += f" [{self.ip_set} {self.scope}]"
        text += f", {self.addresses} address(es) wanted"
        if self.outcome == Outcome.SYNCED:
            text += f" (+{self.added} -{self.removed})"
        text += f", {self.synced} ban(s) synced, {self.invalid} invalid, {self.over_cap} over the cap"
        if self.attempts > 1:
            text += f", {self.attempts} attempts"
        if self.error:
            text += f"; error: {self.error}"
        return text


@dataclass
class SyncResult:
    v4: FamilyResult = field(default_factory=lambda: FamilyResult(version=4))
    v6: FamilyResult = field(default_factory=lambda: FamilyResult(version=6))
    collector_v4: FamilyResult = field(default_factory=lambda: FamilyResult(version=4, ban_scope=Scope.COLLECTOR))
    collector_v6: FamilyResult = field(default_factory=lambda: FamilyResult(version=6, ban_scope=Scope.COLLECTOR))
    skipped: bool = False  # True when no IP set is configured at all
    message: str = ""

    @property
    def families(self) -> dict[str, FamilyResult]:
        return {"v4": self.v4, "v6": self.v6, "collector_v4": self.collector_v4, "collector_v6": self.collector_v6}

    def family(self, version: int, scope: str = Scope.ALL) -> FamilyResult:
        prefix = "" if scope == Scope.ALL else "collector_"
        return self.families[f"{prefix}v{version}"]

    @property
    def over_cap(self) -> dict[str, int]:
        """Bans left out of each set because it is full: the dashboard shows a warning when non-zero."""
        return {key: family.over_cap for key, family in self.families.items()}

    @property
    def failed(self) -> bool:
        return any(family.outcome == Outcome.FAILED for family in self.families.values())

    @property
    def error(self) -> str:
        return "; ".join(f"{f.label}: {f.error}" for f in self.families.values() if f.outcome == Outcome.FAILED)

    def summary_lines(self) -> list[str]:
        return [family.summary() for family in self.families.values()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "message": self.message,
            "failed": self.failed,
            "error": self.error,
            "over_cap": self.over_cap,
            "families": {key: {**asdict(family), "summary": family.summary()} for key, family in self.families.items()},
        }


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class IPSetRef:
    arn: str
    name: str
    id: str
    scope: str
    region: str


class ConfigError(Exception):
    pass


def parse_ipset_arn(arn: str, *, default_scope: str | None = None) -> IPSetRef:
    """Name, id and scope of a WAFv2 IP set from its ARN; WAF_SCOPE when the ARN has no scope part."""
    match = _ARN.match(arn.strip())
    if not match:
        raise ConfigError(f"{arn!r} is not a WAFv2 IP set ARN (arn:aws:wafv2:REGION:ACCOUNT:regional/ipset/NAME/ID)")
    scope = _SCOPES.get(match["scope"] or "") or (default_scope or settings.WAF_SCOPE or "").upper()
    if scope not in ("REGIONAL", "CLOUDFRONT"):
        raise ConfigError(f"WAF scope {scope!r} is neither REGIONAL nor CLOUDFRONT")
    return IPSetRef(arn=arn.strip(), name=match["name"], id=match["id"], scope=scope, region=match["region"])


def make_client() -> Any:
    return boto3.client(
        "wafv2",
        region_name=settings.AWS_REGION,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}),
    )


# ---------------------------------------------------------------------------------------------
# Validation and the cap


def validate_network(network: str, version: int) -> tuple[str | None, str]:
    """(CIDR as WAF wants it, "") or (None, why it is refused). Strict: host bits must be clear."""
    if version not in FAMILIES:
        return None, f"invalid network: unknown IP version {version!r}; never sent to the WAF"
    try:
        parsed = ipaddress.ip_network((network or "").strip(), strict=True)
    except ValueError as exc:
        reason = "host bits set" if "host bits set" in str(exc) else f"not a valid IPv{version} CIDR"
        return None, f"invalid network: {reason}; never sent to the WAF"
    if parsed.version != version:
        return None, f"invalid network: IPv{parsed.version} recorded as IPv{version}; never sent to the WAF"
    if parsed.prefixlen < MIN_PREFIX[version]:
        return None, f"invalid network: wider than /{MIN_PREFIX[version]}; never sent to the WAF"
    return parsed.with_prefixlen, ""


def _canonical(address: str) -> str:
    """An address as WAF returned it, in our notation (WAF may print IPv6 differently)."""
    try:
        return ipaddress.ip_network(address.strip(), strict=False).with_prefixlen
    except ValueError:
        return address


@dataclass
class _Plan:
    """What one family's set should hold and which bans end up in which state."""

    addresses: list[str] = field(default_factory=list)  # sorted, unique
    send_ids: list[int] = field(default_factory=list)  # bans whose address is in `addresses`
    already_synced: set[int] = field(default_factory=set)  # of send_ids: synced with no message
    over_cap_ids: list[int] = field(default_factory=list)
    invalid: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # message -> ids


def _plan(rows: Iterable[tuple[int, str, int, dt.datetime, str, str]], version: int, cap: int) -> _Plan:
    """rows: (pk, network, version, created_at, waf_state, waf_message), any order."""
    plan = _Plan()
    ordered = sorted(rows, key=lambda row: (row[3], row[0]), reverse=True)  # newest first
    chosen: set[str] = set()
    for pk, network, row_version, _created, state, message in ordered:
        cidr, why = validate_network(network, row_version)
        if cidr is None:
            plan.invalid[why].append(pk)
            continue
        if cidr not in chosen and len(chosen) >= max(cap, 0):
            plan.over_cap_ids.append(pk)
            continue
        chosen.add(cidr)
        plan.send_ids.append(pk)
        if state == Ban.WafState.SYNCED and not message:
            plan.already_synced.add(pk)
    plan.addresses = sorted(chosen)
    return plan


# ---------------------------------------------------------------------------------------------
# Writing states (bulk, chunked)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _UPDATE_CHUNK):
        yield ids[start : start + _UPDATE_CHUNK]


def _mark(ids: Iterable[int], state: str, message: str = "", synced_at: dt.datetime | None = None) -> int:
    """Set state + message on these bans, skipping rows already there. Returns rows changed."""
    message = message[:_MESSAGE_MAX]
    values: dict[str, Any] = {"waf_state": state, "waf_message": message}
    if synced_at is not None:
        values["waf_synced_at"] = synced_at
    changed = 0
    for chunk in _chunks(sorted(set(ids))):
        changed += Ban.objects.filter(pk__in=chunk).exclude(waf_state=state, waf_message=message).update(**values)
    return changed


def _mark_family_skipped(version: int, scope: str, message: str) -> int:
    """A family with no IP set: its pending active bans of that scope become skipped."""
    rows = Ban.objects.active().filter(version=version, waf_state=Ban.WafState.PENDING)
    # Any scope but `collector` is enforced everywhere, so it belongs with the all-paths sets.
    rows = rows.filter(scope=Scope.COLLECTOR) if scope == Scope.COLLECTOR else rows.exclude(scope=Scope.COLLECTOR)
    return rows.update(waf_state=Ban.WafState.SKIPPED, waf_message=message[:_MESSAGE_MAX])


def _skip_message(scope: str, versions: Iterable[int]) -> str:
    names = " / ".join(ARN_SETTINGS[scope][version] for version in versions)
    if scope == Scope.COLLECTOR:
        return COLLECTOR_APP_ONLY.format(settings=names)
    return f"WAF sync skipped: {names} not set"


# ---------------------------------------------------------------------------------------------
# Talking to WAF


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Delay before retry number `attempt` (1, 2, ...): "equal jitter", i.e. half the exponential
    step plus a random part of the other half, so delays grow yet two racing syncs spread out."""
    step = min(cap, base * (2 ** (attempt - 1)))
    return step / 2 + random.uniform(0, step / 2)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".strip().rstrip(":")
    if isinstance(exc, ConfigError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _push(
    client: Any,
    ref: IPSetRef,
    version: int,
    setting: str,
    addresses: list[str],
    result: FamilyResult,
    *,
    sleep: Callable[[float], None],
    max_attempts: int,
) -> None:
    """get -> compare -> update, re-reading the lock token on each optimistic-lock retry.
    Sets result.outcome to synced / unchanged; raises ClientError / BotoCoreError / ConfigError."""
    desired = set(addresses)
    max_attempts = max(1, max_attempts)
    for attempt in range(1, max_attempts + 1):
        result.attempts = attempt
        response = client.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)
        ip_set = response["IPSet"]
        kind = ip_set.get("IPAddressVersion")
        if kind and kind != IP_ADDRESS_VERSION[version]:
            raise ConfigError(f"IP set {ref.name} holds {kind} addresses but is configured as {setting}")
        current = {_canonical(address) for address in ip_set.get("Addresses", [])}
        if current == desired:
            result.outcome = Outcome.UNCHANGED
            return
        params: dict[str, Any] = {
            "Name": ref.name,
            "Scope": ref.scope,
            "Id": ref.id,
            "Addresses": addresses,
            "LockToken": response["LockToken"],
        }
        if ip_set.get("Description"):  # update_ip_set replaces the whole spec: keep the description
            params["Description"] = ip_set["Description"]
        try:
            client.update_ip_set(**params)
        except ClientError as exc:
            if _error_code(exc) != LOCK_CONFLICT or attempt == max_attempts:
                raise
            delay = backoff_delay(attempt)
            log.info("WAF %s: lock conflict on attempt %d, retrying in %.2fs", ref.name, attempt, delay)
            sleep(delay)
            continue
        result.outcome = Outcome.SYNCED
        result.added = len(desired - current)
        result.removed = len(current - desired)
        return


def _sync_family(
    client_factory: Callable[[], Any],
    version: int,
    ref: IPSetRef | ConfigError,
    rows: list[tuple[int, str, int, dt.datetime, str, str]],
    result: FamilyResult,
    *,
    now: dt.datetime,
    sleep: Callable[[float], None],
    max_attempts: int,
) -> None:
    cap = int(settings.WAF_MAX_ADDRESSES)
    plan = _plan(rows, version, cap)
    result.addresses = len(plan.addresses)
    result.invalid = sum(len(ids) for ids in plan.invalid.values())
    result.over_cap = len(plan.over_cap_ids)
    for message, ids in plan.invalid.items():
        _mark(ids, Ban.WafState.SKIPPED, message)
    if plan.invalid:
        log.warning("WAF %s: %d ban(s) with an invalid network skipped", result.label, result.invalid)
    if plan.over_cap_ids:
        _mark(plan.over_cap_ids, Ban.WafState.SKIPPED, f"over the WAF cap of {cap} addresses")
        log.warning(
            "WAF %s: %d ban(s) over the WAF cap of %d addresses were left out (oldest first)",
            result.label,
            result.over_cap,
            cap,
        )

    try:
        if isinstance(ref, ConfigError):
            raise ref
        result.ip_set, result.scope = ref.name, ref.scope
        if ref.region and ref.region != settings.AWS_REGION:
            log.warning("WAF %s is in %s but AWS_REGION is %s", ref.name, ref.region, settings.AWS_REGION)
        _push(
            client_factory(),
            ref,
            version,
            result.setting,
            plan.addresses,
            result,
            sleep=sleep,
            max_attempts=max_attempts,
        )
    except (ClientError, BotoCoreError, ConfigError) as exc:
        result.outcome = Outcome.FAILED
        result.error = _error_text(exc)[:_MESSAGE_MAX]
        # Bans already marked synced are still in the set (nothing but this sync removes them).
        pending = [pk for pk in plan.send_ids if pk not in plan.already_synced]
        _mark(pending, Ban.WafState.FAILED, f"WAF sync failed: {result.error}")
        log.warning("WAF sync of %s failed (the next sync retries): %s", result.label, result.error)
        return

    newly = [pk for pk in plan.send_ids if pk not in plan.already_synced]
    _mark(newly, Ban.WafState.SYNCED, "", synced_at=now)
    result.synced = len(plan.send_ids)


# ---------------------------------------------------------------------------------------------
# Entry point


def sync_waf(
    *,
    client: Any = None,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
) -> SyncResult:
    """Make the WAF IP sets equal to the active bans. Never raises for AWS errors (see module doc)."""
    now = now or timezone.now()
    result = SyncResult()
    arns = {
        (scope, version): (getattr(settings, ARN_SETTINGS[scope][version], "") or "").strip()
        for scope in SCOPES
        for version in FAMILIES
    }

    if not any(arns.values()):
        result.skipped = True
        result.message = NOT_CONFIGURED
        for scope in SCOPES:
            message = NOT_CONFIGURED if scope == Scope.ALL else _skip_message(scope, FAMILIES)
            for version in FAMILIES:
                result.family(version, scope).message = message
                _mark_family_skipped(version, scope, message)
        log.info(NOT_CONFIGURED)
        return result

    rows_by_set: dict[tuple[str, int], list[tuple[int, str, int, dt.datetime, str, str]]] = defaultdict(list)
    for *row, scope in Ban.objects.active().values_list(
        "pk", "network", "version", "created_at", "waf_state", "waf_message", "scope"
    ):
        # A row whose version is neither 4 nor 6 goes with the family its text looks like.
        version = row[2] if row[2] in FAMILIES else (6 if ":" in (row[1] or "") else 4)
        # Only a collector ban goes to the collector sets; any other scope closes every path.
        rows_by_set[(Scope.COLLECTOR if scope == Scope.COLLECTOR else Scope.ALL, version)].append(tuple(row))

    clients: list[Any] = [client] if client is not None else []

    def client_factory() -> Any:
        if not clients:
            clients.append(make_client())
        return clients[0]

    for scope in SCOPES:
        missing = [version for version in FAMILIES if not arns[(scope, version)]]
        for version in FAMILIES:
            family = result.family(version, scope)
            if version in missing:
                # Both of a pair missing: one message naming both (the collector pair is optional).
                family.message = _skip_message(scope, missing if len(missing) == len(FAMILIES) else [version])
                _mark_family_skipped(version, scope, family.message)
                continue
            try:
                ref: IPSetRef | ConfigError = parse_ipset_arn(arns[(scope, version)])
            except ConfigError as exc:
                ref = ConfigError(f"{family.setting}: {exc}")
            _sync_family(
                client_factory,
                version,
                ref,
                rows_by_set[(scope, version)],
                family,
                now=now,
                sleep=sleep,
                max_attempts=max_attempts,
            )

    for line in result.summary_lines():
        log.info("WAF sync %s", line)
    return result


# ---------------------------------------------------------------------------------------------
# The web ACL rule for the collector sets (docs/deploy.md)


def collector_rule(arns: Iterable[str], *, name: str = "fathom-collector-bans", priority: int = 2) -> dict[str, Any]:
    """The WAFv2 rule that blocks the collector IP sets on the collector paths only:
    AND(the address is in one of the sets, the URI path is one of COLLECTOR_PATHS).

    A single set or a single path is used as is: WAF wants two or more statements in an OR."""

    def any_of(statements: list[dict[str, Any]]) -> dict[str, Any]:
        return statements[0] if len(statements) == 1 else {"OrStatement": {"Statements": statements}}

    ip_sets = [{"IPSetReferenceStatement": {"ARN": arn.strip()}} for arn in arns if arn and arn.strip()]
    if not ip_sets:
        raise ConfigError("no collector IP set: set WAF_COLLECTOR_IPSET_V4_ARN and/or WAF_COLLECTOR_IPSET_V6_ARN")
    paths = [
        {
            "ByteMatchStatement": {
                "SearchString": path,
                "FieldToMatch": {"UriPath": {}},
                # The app decodes the path before routing; so does the rule ("/api/even%74").
                "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}],
                "PositionalConstraint": "EXACTLY",
            }
        }
        for path in sorted(COLLECTOR_PATHS)
    ]
    return {
        "Name": name,
        "Priority": priority,
        "Action": {"Block": {}},
        "Statement": {"AndStatement": {"Statements": [any_of(ip_sets), any_of(paths)]}},
        "VisibilityConfig": {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": name,
        },
    }
