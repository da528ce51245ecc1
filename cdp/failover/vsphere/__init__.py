"""vCenter through pyVmomi: the only package of cdp that imports it.

Modules (the session composes the others; see session.py for TLS and error mapping):

- ``session``: :func:`connect` and :class:`VSphereSession` (implements
  :class:`cdp.failover.vcenter.VCenter`), every public call;
- ``inventory``: cached lookups of datacenters, hosts, networks, datastores and VMs;
- ``api``: the pyVmomi handles, the property collector and task polling;
- ``devices``: disk, controller and NIC device specs;
- ``profile``: a VM's captured hardware profile and the config specs that reproduce it;
- ``guest``: guest customization specs (re-IP).
"""

from cdp.failover.vsphere.api import API_VERSION, DEFAULT_TASK_TIMEOUT_S, TASK_POLL_MAX_S
from cdp.failover.vsphere.session import TOOLS_RUNNING, VSphereSession, connect, ssl_context

__all__ = [
    "API_VERSION",
    "DEFAULT_TASK_TIMEOUT_S",
    "TASK_POLL_MAX_S",
    "TOOLS_RUNNING",
    "VSphereSession",
    "connect",
    "ssl_context",
]
