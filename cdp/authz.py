"""Who may do what at a target: the authorization policy for mTLS identities.

The certificate says who a client is (:class:`cdp.tls.Identity`); this module says what
that identity may do, from the target's ``authz.yaml``::

    sources:            # cdp://source/<name> -> the groups whose journals it may write
      host-a: [group1, group2]
      host-b:           # or a mapping, to list the member ids it may stream as
        groups: [group1]
        members: [host-b, host-b-old]
    operators:          # cdp://operator/<name>: read calls and bookmarks, on every group
      - admin

A source may also make the read calls (status, points, timeline, images, bookmarks) on
the groups it may write, naming the group (GetStatus of every group stays an operator's);
the lifecycle and fencing call (SetLifecycle) is an operator's only.

In a group spanning hosts each host streams as a named member (``member_id``). A source
may stream as the member its certificate names, or as those its entry lists instead; no
two sources that share a group may use the same member id, so members are told apart.

Decisions are pure functions that return a :class:`Refusal` (or None to allow); the gRPC
edge (``cdp/rpc/auth.py``) answers a refusal with its status code. This module never
imports grpc and reads a file only in :func:`load_policy`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from cdp import tls
from cdp.errors import ConfigError, InvalidInputError
from cdp.group import check_name
from cdp.tls import Identity

UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"


@dataclass(frozen=True)
class Policy:
    """The parsed authz.yaml."""

    sources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Source name -> the groups it may write."""
    operators: frozenset[str] = frozenset()
    """Operator names; an operator may read every group and bookmark it."""
    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Source name -> the member ids it may stream as, for sources whose entry lists them."""

    def member_ids(self, source: str) -> frozenset[str]:
        """The member ids ``source`` may stream as: its list, else its own name."""
        return self.members.get(source, frozenset({source}))


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused; ``code`` is the gRPC status code's name."""

    code: str
    message: str


def check_source(policy: Policy, who: Identity | None, call: str) -> Refusal | None:
    """Refuse unless ``who`` is a source that the policy lists (whatever its groups)."""
    if who is None:
        return _no_identity(call)
    if who.role != tls.ROLE_SOURCE:
        return Refusal(PERMISSION_DENIED, f"{call}: {who} is not a source; only source "
                       "certificates (cdp certs init --source NAME=GROUPS) write")  # fmt: skip
    if who.name not in policy.sources:
        return Refusal(PERMISSION_DENIED, f"{call}: {who} is not listed under sources in the "
                       "target's authz.yaml (never authorised, or revoked)")  # fmt: skip
    return None


def check_write(policy: Policy, who: Identity | None, call: str, group: str) -> Refusal | None:
    """Refuse unless ``who`` may write ``group``'s journal (a source listed with it)."""
    refusal = check_source(policy, who, call)
    if refusal is not None or who is None:
        return refusal
    allowed = policy.sources[who.name]
    if group not in allowed:
        mine = ", ".join(sorted(allowed)) or "none"
        return Refusal(
            PERMISSION_DENIED,
            f"{call}: {who} may not write group {group!r} (its groups in the target's "
            f"authz.yaml: {mine})",
        )
    return None


def check_member(
    policy: Policy, who: Identity | None, call: str, group: str, member_id: str
) -> Refusal | None:
    """Refuse unless ``who`` may stream as ``member_id`` of ``group`` (empty: the group alone)."""
    if not member_id:
        return None
    if who is None:
        return _no_identity(call)
    allowed = policy.member_ids(who.name)
    if member_id in allowed:
        return None
    if who.name in policy.members:
        mine = f"its members in the target's authz.yaml: {', '.join(sorted(allowed)) or 'none'}"
    else:
        mine = (f"it streams as {who.name!r}, the name in its certificate, unless "
                f"sources.{who.name}.members in the target's authz.yaml lists others")  # fmt: skip
    return Refusal(
        PERMISSION_DENIED,
        f"{call}: {who} may not stream as member {member_id!r} of group {group!r} ({mine})",
    )


def check_read(policy: Policy, who: Identity | None, call: str) -> Refusal | None:
    """Refuse unless ``who`` is a listed operator (reads every group, bookmarks)."""
    if who is None:
        return _no_identity(call)
    if who.role != tls.ROLE_OPERATOR:
        return Refusal(PERMISSION_DENIED, f"{call}: {who} is not an operator; reading status, "
                       "restore points, timelines and images needs an operator certificate "
                       "(cdp certs init --operator NAME)")  # fmt: skip
    if who.name not in policy.operators:
        return Refusal(PERMISSION_DENIED, f"{call}: {who} is not listed under operators in the "
                       "target's authz.yaml (never authorised, or revoked)")  # fmt: skip
    return None


def check_read_group(policy: Policy, who: Identity | None, call: str, group: str) -> Refusal | None:
    """Refuse unless ``who`` is an operator, or a source reading a group it may write.

    A source holds the data of its own groups anyway, so it may read their status, points,
    timeline and images and bookmark them: the failback (which streams as a source to the
    original site) seeds, bookmarks and exports its reverse groups with one certificate.
    """
    own = who is not None and who.role == tls.ROLE_SOURCE and bool(group)
    if own and who is not None and group in policy.sources.get(who.name, frozenset()):
        return None
    return check_read(policy, who, call)


def check_lifecycle(
    policy: Policy, who: Identity | None, call: str, group: str, loosens: bool
) -> Refusal | None:
    """Refuse a lifecycle change unless by an operator, or by a source of ``group`` not loosening.

    A failback's own failover at the original site marks and fences its reverse group with
    the reverse source's certificate; an unfence (``loosens``) needs an operator.
    """
    if not loosens:
        return check_read_group(policy, who, call, group)
    refusal = check_read(policy, who, call)
    if refusal is not None:
        return Refusal(refusal.code, f"{refusal.message}; an unfence needs an operator")
    return None


def check_session(owner: Identity | None, who: Identity | None, call: str) -> Refusal | None:
    """Refuse unless ``who`` opened the session (``owner`` None: no owner is known)."""
    if owner is None or owner == who:
        return None
    return Refusal(
        PERMISSION_DENIED,
        f"{call}: session_id belongs to a session opened by {owner}, not by {who}; "
        "each source uses only the sessions it opened itself",
    )


def _no_identity(call: str) -> Refusal:
    return Refusal(
        UNAUTHENTICATED,
        f"{call}: the client certificate carries no cdp identity (a SAN URI "
        "cdp://source/NAME or cdp://operator/NAME and the clientAuth usage); "
        "issue one with `cdp certs init`",
    )


# -- the file --------------------------------------------------------------------------------


def load_policy(path: str) -> Policy:
    """Parse an authz.yaml; a bad file raises :class:`ConfigError` naming the key."""
    try:
        with open(path, "rb") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(path, f"cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML ({exc})") from exc
    return parse_policy(path, data if data is not None else {})


def parse_policy(path: str, data: Any) -> Policy:
    """A :class:`Policy` from the YAML document ``data`` of the file ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(path, "must be a mapping with the keys sources and operators")
    unknown = sorted(set(data) - {"sources", "operators"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}", "unknown key (expected sources, operators)")
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError(f"{path}: sources", "must map each source name to a list of groups")
    groups: dict[str, frozenset[str]] = {}
    members: dict[str, frozenset[str]] = {}
    for name, entry in sources.items():
        source = _name(f"{path}: sources", name)
        groups[source], listed = _source(f"{path}: sources.{source}", entry)
        if listed is not None:
            members[source] = listed
    operators = data.get("operators") or []
    if not isinstance(operators, list):
        raise ConfigError(f"{path}: operators", "must be a list of operator names")
    policy = Policy(groups, frozenset(_name(f"{path}: operators", n) for n in operators), members)
    _check_members_apart(path, policy)
    return policy


def _name(where: str, value: Any) -> str:
    try:
        return check_name(where, value if isinstance(value, str) else repr(value))
    except InvalidInputError as exc:
        raise ConfigError(where, str(exc).removeprefix(f"{where}: ")) from None


def _source(where: str, entry: Any) -> tuple[frozenset[str], frozenset[str] | None]:
    """A source's groups, and its member ids if the entry lists them (None: it does not)."""
    if not isinstance(entry, dict):
        return _groups(where, entry), None
    unknown = sorted(set(entry) - {"groups", "members"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "unknown key (expected groups, members)")
    if "groups" not in entry:
        raise ConfigError(f"{where}.groups", "missing: the groups this source may write")
    groups = _groups(f"{where}.groups", entry["groups"])
    if "members" not in entry:
        return groups, None
    listed = entry["members"]
    if not isinstance(listed, list):
        raise ConfigError(
            f"{where}.members",
            "must be a list of member ids, e.g. [esx-01] ([] for none: the source then "
            "streams only groups it writes alone)",
        )
    return groups, frozenset(_name(f"{where}.members", m) for m in listed)


def _groups(where: str, groups: Any) -> frozenset[str]:
    if not isinstance(groups, list):
        raise ConfigError(where, "must be a list of group names, e.g. [group1, group2], or a "
                          "mapping with the keys groups and members")  # fmt: skip
    return frozenset(_name(where, g) for g in groups)


def _check_members_apart(path: str, policy: Policy) -> None:
    """Refuse a policy that lets two sources stream as the same member of one group."""
    claimed: dict[tuple[str, str], str] = {}
    for name in sorted(policy.sources):
        mine = itertools.product(sorted(policy.sources[name]), sorted(policy.member_ids(name)))
        for group, member in mine:
            other = claimed.setdefault((group, member), name)
            if other == name:
                continue
            listed, shared = (name, other) if name in policy.members else (other, name)
            raise ConfigError(
                f"{path}: sources.{listed}.members",
                f"member id {member!r} of group {group!r} is also used by source {shared!r}; "
                "within a group each member id belongs to one source (a source without members "
                "streams as its own name)",
            )


def format_policy(
    sources: Mapping[str, list[str]],
    operators: list[str],
    members: Mapping[str, list[str]] | None = None,
) -> str:
    """An authz.yaml for these sources (with their member ids, if listed) and operators."""
    members = members or {}
    entries = {
        n: {"groups": sorted(g), "members": sorted(members[n])} if n in members else sorted(g)
        for n, g in sources.items()
    }
    body = {"sources": entries, "operators": sorted(operators)}
    return _HEADER + yaml.safe_dump(body, default_flow_style=None, sort_keys=True)


_HEADER = """\
# cdp target authorization, read by `cdp target serve --tls-dir` and re-read when it
# changes. A client's identity is its certificate's SAN URI cdp://ROLE/NAME.
#   sources:   source name -> the consistency groups whose journals it may write, or
#              {groups: [...], members: [...]}: the member ids it may stream as in groups
#              spanning hosts (without members: only the name in its certificate)
#   operators: names that may read status, restore points, timelines and images of
#              every group, and create bookmarks
"""
