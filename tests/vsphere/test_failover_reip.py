"""Re-IP through guest customization (issue 14), read back through pyVmomi.

vcsim 0.24's CustomizeVM_Task (simulator/virtual_machine.go) refuses a powered-on VM
and a spec whose nicSettingMap length differs from the VM's guest.net, queues the spec
(``config.tools.pendingCustomization``) and applies it at the next power-on: per NIC a
FixedIp becomes ``guest.net[i].ipAddress``, the first one ``guest.ipAddress``, a
FixedName ``guest.hostName``, DNS servers ``guest.net[i].dnsConfig.ipAddress``.
"""

from __future__ import annotations

import ipaddress
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

    await orch.failover("live", force_split_brain=True)  # the simulated source still replicates
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


async def test_customize_again_after_a_crash_is_not_queued_twice(
    site: DrSite,
    protected: Vcsim,  # noqa: F811
) -> None:
    """A re-run of the customize step (crash before the log write) adopts the pending one."""
    from cdp.failover import vsphere
    from cdp.failover.plan import Credentials
    from cdp.failover.vcenter import Customization, NicIp

    plan = site.plan()
    vc = vsphere.connect(plan.vcenter, Credentials(site.vcsim.user, site.vcsim.password))
    try:
        dc = find_one(site.si, vim.Datacenter, "DC0")
        pool = find_one(site.si, vim.ClusterComputeResource, "DC0_C0").resourcePool
        spec = vim.vm.ConfigSpec(
            name="bare", files=vim.vm.FileInfo(vmPathName="[cdp-replica] bare/bare.vmx")
        )
        made = wait(dc.vmFolder.CreateVM_Task(config=spec, pool=pool))
        c = Customization("bare", "example.com", (), (), ())
        assert vc.customize_vm(made._moId, c) == "applied"
        assert vc.customize_vm(made._moId, c) == "pending"
        assert made.config.tools.pendingCustomization  # read back: vCenter holds one
        bad = Customization("bare", "example.com", (), (), (NicIp("10.0.0.1", 24, "10.0.0.254"),))
        wait(made.PowerOnVM_Task())  # applies the pending one
        wait(made.PowerOffVM_Task())
        with pytest.raises(Exception, match="NicSettingMismatch|nic"):
            vc.customize_vm(made._moId, bad)  # vcsim: one NIC setting, the VM has none
    finally:
        vc.close()


@pytest.mark.parametrize("host", [0, 1, 17, 254, 255])
def test_rule_keeps_the_host_part(host: int) -> None:
    from cdp.failover.hardware import NicProfile, VmProfile
    from cdp.failover.reip import ReipSettings, Rule, RuleSet, customization

    rule = Rule(
        ipaddress.IPv4Network("10.0.0.0/24"), ipaddress.IPv4Network("172.16.5.0/24"),
        "172.16.5.1", ("172.16.5.53",),
    )  # fmt: skip
    settings = ReipSettings({"live": RuleSet((rule,), {}, "d", ())})
    nic = NicProfile("vmxnet3", "", "VM Network", f"10.0.0.{host}")
    profile = VmProfile("v", "g", "bios", False, 1, 1, 1, "", "", "", (), (), (nic,))
    c = customization(settings, "live", "v", profile, 1)
    assert c is not None and c.nics[0] is not None
    assert c.nics[0].ip == f"172.16.5.{host}" and c.nics[0].prefix == 24
    assert customization(settings, "test", "v", profile, 1) is None  # no test rules
