"""The target's config file (``cdp target serve --config FILE``) and ``cdp target config check``.

:func:`load_config` reads the YAML file into typed :class:`ServeSettings` (the process
settings plus the :class:`cdp.target.config.TargetConfig` the domain reads) and names
the key path of any bad value (``groups.db.history_window: ...``). Flags given on the
command line override the file. :func:`describe_reload` says what a reload changed and
what needs a restart. docs/OPERATIONS.md is the reference of every key.
"""

from __future__ import annotations

import argparse
import dataclasses
import grp
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from cdp.cli import common, journal_keys
from cdp.errors import ConfigError, InvalidInputError
from cdp.failover.yamlkeys import Section, UniqueKeyLoader
from cdp.group import check_name
from cdp.restore.catalog import MAX_HISTORY_WINDOW_S
from cdp.target.config import DEFAULT_POLICY, PRIORITIES, GroupPolicy, TargetConfig
from cdp.target.scrub import DEFAULT_SCRUB_INTERVAL_S

T = TypeVar("T")
DEFAULT_LISTEN = "127.0.0.1:7711"
"""Where the target serves gRPC unless told otherwise."""
TOP_KEYS = (
    "data_dir", "data_group", "listen", "http", "http_allow_hosts", "tls_dir", "insecure",
    "scrub_interval", "policies", "groups", "verify", "journal_key_file",
)  # fmt: skip
"""The keys of the file's top level."""
POLICY_KEYS = (
    "history_window", "journal_limit", "checkpoint_interval", "rpo_alert", "priority",
    "retention_lock",
)  # fmt: skip
"""The keys of a policy (and of a group's overrides, besides ``policy``)."""
VERIFY_KEYS = ("plan", "every", "keep")
"""The keys of a ``verify:`` entry (read by ``cdp failover verify-scheduler``)."""
MIN_VERIFY_EVERY_S = 300.0
"""Shortest verification cadence: a verification boots every VM of the plan."""
DEFAULT_VERIFY_KEEP = 30
"""Verification records kept per plan by the scheduler (older ones are deleted)."""
RESTART_KEYS = (
    "data_dir", "data_group", "listen", "http", "http_allow_hosts", "tls_dir", "insecure",
)  # fmt: skip
"""Settings a reload does not change: they take effect at the next start."""


@dataclass(frozen=True)
class VerifySchedule:
    """One plan the verification scheduler verifies, and how often."""

    plan: str
    """Absolute path of the recovery plan file."""
    every_s: float
    """Seconds between the starts of two verifications."""
    keep: int = DEFAULT_VERIFY_KEEP
    """Newest verification records kept in the plan's state folder."""


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``cdp target serve`` runs with: process settings and the domain config."""

    target: TargetConfig
    listen: str = DEFAULT_LISTEN
    """gRPC HOST:PORT."""
    http: str = ""
    """Web page and /metrics HOST:PORT ("" for off)."""
    http_allow_hosts: tuple[str, ...] = ()
    tls_dir: str = ""
    insecure: bool = False
    data_group: str = ""
    """Name of the group that may read the data at rest ("" for the target's user only)."""
    verify: tuple[VerifySchedule, ...] = ()
    """Scheduled verifications: the target only validates them (it holds no vCenter
    credentials); ``cdp failover verify-scheduler --config FILE`` runs them."""

    @property
    def data_dir(self) -> str:
        """The target's data dir."""
        return self.target.data_dir


def load_config(path: str, flags: argparse.Namespace | None = None) -> ServeSettings:
    """Read and validate the config file; ``flags`` (``target serve``'s) override it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path!r} is not valid YAML: {exc}") from exc
    return parse_config({} if data is None else data, flags)


def parse_config(data: object, flags: argparse.Namespace | None = None) -> ServeSettings:
    """Validate decoded YAML (and flag overrides) into :class:`ServeSettings`."""
    top = Section(data, "")
    top.allow(*TOP_KEYS)
    overrides = _flag_overrides(flags)
    policies = _policies(top.section("policies"), overrides)
    default = policies[DEFAULT_POLICY]
    data_dir = _flag(flags, "data_dir") or top.string("data_dir", required=True)
    scrub = overrides.get("scrub_interval")
    group_field = "--data-group" if _flag(flags, "data_group") else "data_group"
    data_group = _flag(flags, "data_group") or top.string("data_group", "")
    target = TargetConfig(
        os.path.abspath(data_dir),
        history_window_s=default.history_window_s,
        journal_limit_bytes=default.journal_limit_bytes,
        retention_lock_s=default.retention_lock_s,
        checkpoint_interval_s=default.checkpoint_interval_s,
        scrub_interval_s=_duration(top, "scrub_interval", DEFAULT_SCRUB_INTERVAL_S, 0, 1e9)
        if scrub is None else scrub,
        policies=policies,
        group_policies=_groups(top.section("groups"), policies),
        data_gid=resolve_group(group_field, data_group) if data_group else None,
        journal_keys=journal_keys.load_keyring(
            _flag(flags, "journal_key_file") or top.string("journal_key_file", ""),
            "--journal-key-file" if _flag(flags, "journal_key_file") else "journal_key_file",
        ),
    )  # fmt: skip
    if (training := _flag(flags, "detect_training")) is not None:
        training_s = common.parse_duration("--detect-training", training)
        if not 1 <= training_s <= 7 * 86400:
            raise InvalidInputError("--detect-training", "must be between 1 s and 7 days")
        target = dataclasses.replace(target, detect_training_s=training_s)
    listen, http = top.string("listen", DEFAULT_LISTEN), top.string("http", "")
    allow_hosts = top.strings("http_allow_hosts")
    return ServeSettings(
        target=target,
        listen=_flag(flags, "listen") or listen,
        http=_flag(flags, "http") or http,
        http_allow_hosts=tuple(_flag(flags, "http_allow_host") or allow_hosts),
        verify=_verify(top),
        data_group=data_group,
        **_tls(top, flags),
    )


def resolve_group(field: str, name: str) -> int:
    """The id of group ``name``; ConfigError naming ``field`` if it cannot be used.

    It cannot when it does not exist on this host, or when this process may not give
    files to it (not a member, and not root).
    """
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            field, f"no group named {name!r} on this host",
            hint=f"create it (groupadd --system {name}) or leave data_group out",
        ) from None  # fmt: skip
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(
            field, f"this user is not a member of group {name!r}, so cannot give it the data",
            hint=f"usermod -aG {name} <the target's user> (systemd: SupplementaryGroups=)",
        )  # fmt: skip
    return gid


def _verify(top: Section) -> tuple[VerifySchedule, ...]:
    """The ``verify:`` list: ``- {plan: FILE, every: 24h, keep: 30}``, each plan once."""
    found: list[VerifySchedule] = []
    for m in top.sequence("verify", required=False):
        m.allow(*VERIFY_KEYS)
        plan = os.path.abspath(m.string("plan", required=True))
        if plan in (v.plan for v in found):
            raise ConfigError(m.key("plan"), f"{plan} is listed twice")
        every = _duration(m, "every", 0.0, MIN_VERIFY_EVERY_S, 1e9)
        if not every:
            raise ConfigError(m.key("every"), "required, e.g. 24h")
        found.append(
            VerifySchedule(plan, every, m.integer("keep", DEFAULT_VERIFY_KEEP, low=1, high=10_000))
        )
    return tuple(found)


def _flag(flags: argparse.Namespace | None, name: str) -> Any:
    """A flag's value, None when not given (or no flags)."""
    return getattr(flags, name, None)


def _tls(top: Section, flags: argparse.Namespace | None) -> dict[str, Any]:
    """tls_dir and insecure: a flag (either one) wins over both keys of the file."""
    if getattr(flags, "insecure", False):
        return {"tls_dir": "", "insecure": True}
    tls_dir, insecure = top.string("tls_dir", default=""), top.boolean("insecure", False)
    if _flag(flags, "tls_dir"):
        return {"tls_dir": _flag(flags, "tls_dir"), "insecure": False}
    if tls_dir and insecure:
        raise ConfigError("insecure", "give tls_dir or insecure: true, not both")
    return {"tls_dir": tls_dir, "insecure": insecure}


def _flag_overrides(flags: argparse.Namespace | None) -> dict[str, Any]:
    """The default policy's settings given as flags, parsed (errors name the flag)."""
    found: dict[str, Any] = {}
    if flags is None:
        return found
    if getattr(flags, "history_window", None) is not None:
        window = common.parse_duration("--history-window", flags.history_window)
        if window > MAX_HISTORY_WINDOW_S:
            raise InvalidInputError("--history-window", "at most 30 days (30d)")
        found["history_window_s"] = window
    if getattr(flags, "journal_limit", None) is not None:
        found["journal_limit_bytes"] = common.parse_size("--journal-limit", flags.journal_limit)
    if getattr(flags, "retention_lock", None) is not None:
        lock = common.parse_duration("--retention-lock", flags.retention_lock)
        if lock > MAX_HISTORY_WINDOW_S:
            raise InvalidInputError("--retention-lock", "at most 30 days (30d)")
        found["retention_lock_s"] = lock
    if getattr(flags, "checkpoint_interval", None) is not None:
        if not 0.05 <= flags.checkpoint_interval <= 3600:
            raise InvalidInputError(
                "--checkpoint-interval", "must be between 0.05 and 3600 seconds"
            )
        found["checkpoint_interval_s"] = float(flags.checkpoint_interval)
    if getattr(flags, "scrub_interval", None) is not None:
        found["scrub_interval"] = common.parse_duration("--scrub-interval", flags.scrub_interval)
    return found


def _policies(section: Section, overrides: dict[str, Any]) -> dict[str, GroupPolicy]:
    """Named policies; each inherits what it does not set from ``default`` (flags win there)."""
    for name in section.data:
        if not isinstance(name, str) or not name:
            raise ConfigError(section.key(str(name)), "a policy name must be a non-empty string")
    fields = {k: v for k, v in overrides.items() if k != "scrub_interval"}
    default = dataclasses.replace(_policy(section.section(DEFAULT_POLICY), GroupPolicy()), **fields)
    if default.history_window_s < default.retention_lock_s:
        flag = "--history-window" if "history_window_s" in fields else "--retention-lock"
        raise ConfigError(flag, _short_window(default))
    found = {DEFAULT_POLICY: default}
    for name in section.data:
        if name != DEFAULT_POLICY:
            found[name] = _policy(section.section(name), default)
    return found


def _groups(section: Section, policies: dict[str, GroupPolicy]) -> dict[str, GroupPolicy]:
    """Group id -> its policy: a named one (``policy:``) with the group's own overrides."""
    found: dict[str, GroupPolicy] = {}
    for group in section.data:
        _as_config(check_name, section.key(str(group)), str(group))
        value = section.data[group]
        value = {"policy": value} if isinstance(value, str) else ({} if value is None else value)
        m = Section(value, section.key(str(group)))
        name = m.string("policy", default=DEFAULT_POLICY)
        if name not in policies:
            raise ConfigError(
                m.key("policy"), f"no policy {name!r}; defined: {', '.join(sorted(policies))}"
            )
        found[str(group)] = _policy(m, policies[name], "policy")
    return found


def _policy(m: Section, base: GroupPolicy, *extra: str) -> GroupPolicy:
    """A policy section over ``base``: what the section sets wins."""
    m.allow(*POLICY_KEYS, *extra)
    policy = GroupPolicy(
        history_window_s=_duration(m, "history_window", base.history_window_s, 0,
                                   MAX_HISTORY_WINDOW_S),
        journal_limit_bytes=_size(m, "journal_limit", base.journal_limit_bytes),
        checkpoint_interval_s=_duration(m, "checkpoint_interval", base.checkpoint_interval_s,
                                        0.05, 3600),
        rpo_alert_s=_duration(m, "rpo_alert", base.rpo_alert_s, 1, 1e9),
        priority=m.choice("priority", PRIORITIES, base.priority),
        retention_lock_s=_duration(m, "retention_lock", base.retention_lock_s, 0,
                                   MAX_HISTORY_WINDOW_S),
    )  # fmt: skip
    if policy.history_window_s < policy.retention_lock_s:
        raise ConfigError(m.key("history_window"), _short_window(policy))
    return policy


def _short_window(policy: GroupPolicy) -> str:
    return (
        f"{policy.history_window_s:g} s is shorter than the retention lock of "
        f"{policy.retention_lock_s:g} s; the history window must be at least the lock"
    )


def _duration(m: Section, name: str, default: float, low: float, high: float) -> float:
    """Seconds given as a number or as a duration string (90s, 15m, 1h, 30d)."""
    value = m.data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(m.key(name), f"must be seconds or a duration like 15m, not {value!r}")
    if isinstance(value, str):
        seconds = _as_config(common.parse_duration, m.key(name), value)
    else:
        seconds = float(value)
    if not low <= seconds <= high:
        raise ConfigError(m.key(name), f"{seconds:g} s is outside {low:g}..{high:g} s")
    return seconds


def _size(m: Section, name: str, default: int) -> int:
    """Bytes given as an integer or as a size string (64MiB, 16GiB); 0 for no limit."""
    value = m.data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise ConfigError(m.key(name), f"must be bytes or a size like 16GiB, not {value!r}")
    size = _as_config(common.parse_size, m.key(name), value) if isinstance(value, str) else value
    if size < 0:
        raise ConfigError(m.key(name), "must not be negative")
    return size


def _as_config(parse: Callable[[str, str], T], key: str, text: str) -> T:
    """``parse(key, text)`` with its InvalidInputError as the ConfigError of ``key``."""
    try:
        return parse(key, text)
    except InvalidInputError as exc:
        raise ConfigError(key, str(exc).removeprefix(f"{key}: ")) from exc


def describe_reload(old: ServeSettings, new: ServeSettings) -> tuple[list[str], list[str]]:
    """(what the reload changes live, what changed in the file but needs a restart)."""
    live = [f"{what}: {change}" for what, change in _policy_changes(old.target, new.target)]
    if old.target.scrub_interval_s != new.target.scrub_interval_s:
        live.append(f"scrub_interval: {old.target.scrub_interval_s:g} s -> "
                    f"{new.target.scrub_interval_s:g} s (from the next scrub on)")  # fmt: skip
    restart = [
        f"{key}: {getattr(old, key)!r} -> {getattr(new, key)!r} needs a restart"
        for key in RESTART_KEYS
        if getattr(old, key) != getattr(new, key)
    ]
    if old.target.journal_keys != new.target.journal_keys:  # never printed: secrets
        restart.append("journal_key_file: the journal keyring changed; needs a restart")
    return live, restart


def _policy_changes(old: TargetConfig, new: TargetConfig) -> list[tuple[str, str]]:
    """(``policies.NAME`` or ``groups.ID``, "field a -> b, ...") for each policy that changed."""
    found = []
    for kind, before, after in (
        ("policies", old.policies, new.policies),
        ("groups", old.group_policies, new.group_policies),
    ):
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            if a != b:
                found.append((f"{kind}.{name}", _field_changes(a, b)))
    return found


def _field_changes(a: GroupPolicy | None, b: GroupPolicy | None) -> str:
    if a is None or b is None:
        return "added" if a is None else "removed (the default policy applies)"
    x, y = dataclasses.asdict(a), dataclasses.asdict(b)
    return ", ".join(f"{k} {x[k]!r} -> {y[k]!r}" for k in x if x[k] != y[k])


def to_json(settings: ServeSettings) -> dict[str, Any]:
    """The resolved settings as plain JSON (``config check --json``)."""
    t = settings.target
    return {
        "data_dir": t.data_dir, "data_group": settings.data_group,
        "listen": settings.listen, "http": settings.http,
        "http_allow_hosts": list(settings.http_allow_hosts), "tls_dir": settings.tls_dir,
        "insecure": settings.insecure, "scrub_interval_s": t.scrub_interval_s,
        "policies": {k: dataclasses.asdict(v) for k, v in t.policies.items()},
        "groups": {k: dataclasses.asdict(v) for k, v in t.group_policies.items()},
        "verify": [dataclasses.asdict(v) for v in settings.verify],
    }  # fmt: skip


def add_parser(tsub: Any) -> None:
    """Register ``target config check``."""
    p = tsub.add_parser("config", help="work with the target's config file")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    c = csub.add_parser(
        "check", help="validate a config file without starting (exit 0 valid, 2 invalid)"
    )
    c.add_argument("file", help="the YAML config file (docs/OPERATIONS.md)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    """Validate the file; print the resolved settings or the bad key."""
    try:
        settings = load_config(args.file)
    except InvalidInputError as exc:
        if args.json:
            common.emit_json({"valid": False, "key": exc.field, "error": str(exc)})
        return common.fail(exc)
    if args.json:
        common.emit_json({"valid": True, "config": to_json(settings)})
        return common.EXIT_OK
    t = settings.target
    shared = f" (readable by group {settings.data_group})" if settings.data_group else ""
    print(f"{args.file}: valid; data in {t.data_dir}{shared}, serving on {settings.listen}")
    for kind, table in (("policy", t.policies), ("group", t.group_policies)):
        for name, pol in sorted(table.items()):
            print(f"  {kind} {name}: history {pol.history_window_s:g} s, journal limit "
                  f"{common.fmt_bytes(pol.journal_limit_bytes)}, checkpoint every "
                  f"{pol.checkpoint_interval_s:g} s, RPO alert {pol.rpo_alert_s:g} s, "
                  f"priority {pol.priority}"
                  + (f", retention lock {pol.retention_lock_s:g} s" if pol.retention_lock_s
                     else ""))  # fmt: skip
    return common.EXIT_OK


def dump(settings: ServeSettings) -> str:
    """The resolved settings as one JSON line (logged at start and reload)."""
    return json.dumps(to_json(settings), sort_keys=True)
