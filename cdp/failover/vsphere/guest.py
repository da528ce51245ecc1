"""Guest customization specs (re-IP through ``CustomizeVM_Task``)."""

from __future__ import annotations

from typing import Any

from cdp.failover.vcenter import Customization
from cdp.failover.vsphere.api import vim


def _customization_spec(c: Customization) -> Any:
    """A CustomizationSpec: LinuxPrep with a fixed host name, one adapter mapping per NIC."""
    adapters = []
    for nic in c.nics:
        if nic is None:
            ip = vim.vm.customization.IPSettings(ip=vim.vm.customization.DhcpIpGenerator())
        else:
            mask = _netmask(nic.prefix)
            ip = vim.vm.customization.IPSettings(
                ip=vim.vm.customization.FixedIp(ipAddress=nic.ip),
                subnetMask=mask,
                gateway=[nic.gateway],
                dnsServerList=list(nic.dns),
            )
        adapters.append(vim.vm.customization.AdapterMapping(adapter=ip))
    identity = vim.vm.customization.LinuxPrep(
        hostName=vim.vm.customization.FixedName(name=c.hostname), domain=c.domain
    )
    return vim.vm.customization.Specification(
        identity=identity,
        globalIPSettings=vim.vm.customization.GlobalIPSettings(
            dnsServerList=list(c.dns_servers), dnsSuffixList=list(c.dns_suffixes)
        ),
        nicSettingMap=adapters,
    )


def _netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))
