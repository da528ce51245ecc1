"""Re-IP through guest customization (issue 14), read back through pyVmomi.

vcsim 0.24's CustomizeVM_Task (simulator/virtual_machine.go) refuses a powered-on VM
and a spec whose nicSettingMap length differs from the VM's guest.net, queues the spec
(``config.tools.pendingCustomization``) and applies it at the next power-on: per NIC a
FixedIp becomes ``guest.net[i].ipAddress``, the first one ``guest.ipAddress``, a
FixedName ``guest.hostName``, DNS servers ``guest.net[i].dnsConfig.ipAddress``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim

from cdp.errors import ConfigError

from .drsite import DrSite, find_one, wait
from .harness import Vcsim
from .test_failover_hardware import create_protected_vms, fidelity_plan, orchestrator
from .test_failover_hardware import protected as protected  # noqa: F401 - the fixture

RULES = {
    "test": {
        "rules": [
            {"from": "10.0.0.0/24", "to": "10.99.0.0/24", "gateway": "10.99.0.1",
             "dns": ["10.99.0.53"]}
        ],
        "domain": "test.example",
    },
    "live": {
        "rules": [
            {"from": "10.0.0.0/24", "to": "10.50.0.0/24", "gateway": "10.50.0.1",
             "network": "VM Network"}
        ],
        "vms": {"app01": [{"nic": 0, "ip": "10.50.1.20", "prefix": 24, "gateway": "10.50.1.1"}]},
    },
}  # fmt: skip


def set_guest_ip(si: Any, vm: str, ip: str) -> None:
    """Make vcsim report ``ip`` on the VM's first NIC (its SET.guest.ipAddress hook)."""
    obj = find_one(si, vim.VirtualMachine, vm)
    option = vim.option.OptionValue(key="SET.guest.ipAddress", value=ip)
    wait(obj.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[option])))


def guest(si: Any, name: str) -> dict[str, Any]:
    vm = find_one(si, vim.VirtualMachine, name)
    nets = [(list(n.ipAddress or []), list(n.dnsConfig.ipAddress or []) if n.dnsConfig else [])
            for n in vm.guest.net]  # fmt: skip
    return {"ip": vm.guest.ipAddress, "host": vm.guest.hostName, "nets": nets}


async def test_reip_rules_apply_per_mode(site: DrSite, protected: Vcsim) -> None:  # noqa: F811
    prod_si = protected.connect()
    create_protected_vms(prod_si)
    set_guest_ip(prod_si, "db01", "10.0.0.17")
    orch = orchestrator(site, protected, {**fidelity_plan(site, protected), "reip": RULES})
    rows = {r.name: r for r in (await orch.check()).rows}
    assert rows["re-IP (test)"].status == "pass", rows["re-IP (test)"]
    assert rows["re-IP (live)"].status == "pass", rows["re-IP (live)"]

    await orch.failover("test")
    got = guest(site.si, "db01-test")
    assert got["ip"] == "10.99.0.17" and got["host"] == "db01"
    assert got["nets"][0] == (["10.99.0.17"], ["10.99.0.53"])
    assert got["nets"][1][0] == []  # the second NIC has no rule: DHCP
    steps = {s.id: s for s in orch.log.op.steps}
    assert steps["customize:db01"].result == {
        "ref": steps["customize:db01"].result["ref"],
        "customization": "applied",
    }
    assert "customize:app01" not in steps  # no captured address, no override: untouched
    await orch.stop_test()

    await orch.failover("live")
    assert guest(site.si, "db01")["ip"] == "10.50.0.17"
    assert guest(site.si, "app01")["ip"] == "10.50.1.20"  # the per-VM static override
    orch.close()


async def test_reip_readiness_names_bad_nic(site: DrSite, protected: Vcsim) -> None:  # noqa: F811
    prod_si = protected.connect()
    create_protected_vms(prod_si)
    bad = {"live": {"vms": {"app01": [
        {"nic": 3, "ip": "10.50.1.20", "prefix": 24, "gateway": "10.50.1.1"}]}}}  # fmt: skip
    orch = orchestrator(site, protected, {**fidelity_plan(site, protected), "reip": bad})
    rows = {r.name: r for r in (await orch.check()).rows}
    assert rows["re-IP (live)"].status == "fail"
    assert "app01 has 1 NIC(s), reip.live sets nic 3" in rows["re-IP (live)"].detail
    orch.close()


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"from": "10.0.0.0/24", "to": "10.50.0.0/24", "gateway": "10.60.0.1"}, "gateway"),
        ({"from": "10.0.0.0/24", "to": "10.50.0.0/16", "gateway": "10.50.0.1"}, "to"),
        ({"from": "10.0.0.1/24", "to": "10.50.0.0/24", "gateway": "10.50.0.1"}, "from"),
        (
            {
                "from": "10.0.0.0/24",
                "to": "10.50.0.0/24",
                "gateway": "10.50.0.1",
                "network": "nope",
            },
            "network",
        ),  # fmt: skip
    ],
)
def test_bad_rule_is_named(
    site: DrSite,
    protected: Vcsim,  # noqa: F811
    rule: dict[str, Any],
    key: str,
) -> None:
    data = {**fidelity_plan(site, protected), "reip": {"live": {"rules": [rule]}}}
    with pytest.raises(ConfigError) as exc:
        site.plan(data)
    assert f"reip.live.rules[0].{key}" in str(exc.value)
