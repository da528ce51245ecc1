"""Re-IP of recovered VMs: per-NIC rules (like SRM's IP customization rules) and overrides.

The plan's ``reip`` section has one rule set per failover kind (``live``, ``test``). A
rule maps a protected subnet to a recovery subnet of the same prefix length, keeping the
host part (``10.0.0.17`` in ``10.0.0.0/24`` -> ``10.50.0.17`` in ``10.50.0.0/24``), with
the recovery subnet's gateway and DNS servers; a rule may be limited to NICs on one
protected network. Per-VM static settings (``vms: {db01: [{nic: 0, ip: ...}]}``) win
over rules. The NIC's protected address comes from the captured hardware (``guest.net``
of the protected VM, see :mod:`cdp.failover.hardware`).

:func:`customization` turns that into a :class:`~cdp.failover.vcenter.Customization`
(one entry per NIC: a fixed address or DHCP) that ``CustomizeVM_Task`` applies before
power-on. Pure; parsing names the bad key path.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cdp.errors import ConfigError
from cdp.failover.hardware import VmProfile
from cdp.failover.vcenter import Customization, NicIp
from cdp.failover.yamlkeys import Section

MODES = ("live", "test")


@dataclass(frozen=True)
class Rule:
    """From-subnet -> to-subnet (same prefix), gateway and DNS; ``network`` limits it."""

    source: ipaddress.IPv4Network
    target: ipaddress.IPv4Network
    gateway: str
    dns: tuple[str, ...]
    network: str = ""
    """A protected network name; "" applies the rule to NICs on any network."""


@dataclass(frozen=True)
class StaticNic:
    """A per-VM static setting for NIC ``nic``."""

    nic: int
    ip: str
    prefix: int
    gateway: str
    dns: tuple[str, ...]


@dataclass(frozen=True)
class RuleSet:
    """The re-IP settings of one failover kind."""

    rules: tuple[Rule, ...]
    static: dict[str, tuple[StaticNic, ...]]
    domain: str
    """DNS domain the guest customization sets (LinuxPrep needs one)."""
    dns_suffixes: tuple[str, ...]


@dataclass(frozen=True)
class ReipSettings:
    """Rule sets per failover kind (``live``, ``test``); a missing kind has none."""

    sets: dict[str, RuleSet]


# ---------------------------------------------------------------- parsing


def parse(m: Section | None, vms: list[str], networks: list[str]) -> ReipSettings | None:
    """The plan's ``reip`` section, validated (bad key named by its path)."""
    if m is None:
        return None
    m.allow(*MODES)
    sets = {}
    for mode in MODES:
        child = m.child(mode, required=False)
        if child is not None:
            sets[mode] = _ruleset(child, vms, networks)
    return ReipSettings(sets)


def _ruleset(m: Section, vms: list[str], networks: list[str]) -> RuleSet:
    m.allow("rules", "vms", "domain", "dns_suffixes")
    rules = tuple(_rule(r, networks) for r in m.sequence("rules", required=False))
    static: dict[str, tuple[StaticNic, ...]] = {}
    per_vm = m.section("vms")
    for vm in per_vm.data:
        if vm not in vms:
            raise ConfigError(per_vm.key(str(vm)), f"{vm!r} is not a VM of this plan")
        static[vm] = tuple(_static(s) for s in per_vm.sequence(str(vm), required=True))
    return RuleSet(
        rules, static, m.string("domain", default="localdomain"), tuple(m.strings("dns_suffixes"))
    )


def _net(m: Section, key: str) -> ipaddress.IPv4Network:
    text = m.string(key, required=True)
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(m.key(key), f"{text!r} is not an IPv4 subnet (a.b.c.d/n): {exc}") from exc


def _address(m: Section, key: str) -> str:
    text = m.string(key, required=True)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as exc:
        raise ConfigError(m.key(key), f"{text!r} is not an IPv4 address") from exc


def _dns(m: Section) -> tuple[str, ...]:
    out = []
    for i, text in enumerate(m.strings("dns")):
        try:
            out.append(str(ipaddress.IPv4Address(text)))
        except ValueError as exc:
            raise ConfigError(f"{m.key('dns')}[{i}]", f"{text!r} is not an IPv4 address") from exc
    return tuple(out)


def _rule(m: Section, networks: list[str]) -> Rule:
    m.allow("from", "to", "gateway", "dns", "network")
    source, target = _net(m, "from"), _net(m, "to")
    if source.prefixlen != target.prefixlen:
        raise ConfigError(
            m.key("to"), f"/{target.prefixlen} differs from /{source.prefixlen} of 'from'",
            hint="a rule keeps the host part, so both subnets need the same prefix length",
        )  # fmt: skip
    gateway = _address(m, "gateway")
    if ipaddress.IPv4Address(gateway) not in target:
        raise ConfigError(m.key("gateway"), f"{gateway} is not in {target}")
    network = m.string("network", default="")
    if network and network not in networks:
        raise ConfigError(m.key("network"), f"{network!r} is not a network_mappings[].source")
    return Rule(source, target, gateway, _dns(m), network)


def _static(m: Section) -> StaticNic:
    m.allow("nic", "ip", "prefix", "gateway", "dns")
    ip, gateway = _address(m, "ip"), _address(m, "gateway")
    prefix = m.integer("prefix", required=True, low=1, high=32)
    if ipaddress.IPv4Address(gateway) not in ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False):
        raise ConfigError(m.key("gateway"), f"{gateway} is not in {ip}/{prefix}")
    return StaticNic(m.integer("nic", required=True, low=0, high=9), ip, prefix, gateway, _dns(m))


# ---------------------------------------------------------------- applying


def _by_rule(rules: tuple[Rule, ...], ip: str, network: str) -> NicIp | None:
    if not ip:
        return None
    address = ipaddress.IPv4Address(ip)
    for r in rules:
        if (not r.network or r.network == network) and address in r.source:
            host = int(address) - int(r.source.network_address)
            new = ipaddress.IPv4Address(int(r.target.network_address) + host)
            return NicIp(str(new), r.target.prefixlen, r.gateway, r.dns)
    return None


def customization(
    settings: ReipSettings | None, mode: str, vm: str, profile: VmProfile | None, nics: int
) -> Customization | None:
    """The guest customization of a recovered VM with ``nics`` NICs, or None (no re-IP).

    NIC i gets its static override, else the first rule matching its protected address
    (from the capture), else DHCP; a VM none of whose NICs is matched is not customized.
    """
    rs = settings.sets.get(mode) if settings else None
    if rs is None or nics == 0:
        return None
    static = {s.nic: s for s in rs.static.get(vm, ())}
    captured = profile.nics if profile else ()
    out: list[NicIp | None] = []
    for i in range(nics):
        if i in static:
            s = static[i]
            out.append(NicIp(s.ip, s.prefix, s.gateway, s.dns))
        elif i < len(captured):
            out.append(_by_rule(rs.rules, captured[i].ip, captured[i].network))
        else:
            out.append(None)
    if all(n is None for n in out):
        return None
    dns = tuple(dict.fromkeys(d for n in out if n for d in n.dns))
    return Customization(vm, rs.domain, dns, rs.dns_suffixes, tuple(out))


def unmatched(
    settings: ReipSettings | None, mode: str, vm: str, profile: VmProfile | None
) -> list[str]:
    """Captured NICs of ``vm`` with an address that no rule or override covers."""
    rs = settings.sets.get(mode) if settings else None
    if rs is None or profile is None:
        return []
    static = {s.nic for s in rs.static.get(vm, ())}
    return [
        f"nic {i} ({n.ip} on {n.network!r})"
        for i, n in enumerate(profile.nics)
        if n.ip and i not in static and _by_rule(rs.rules, n.ip, n.network) is None
    ]
