"""The failover leaves of the cdp error tree (see cdp/errors.py for the trunk).

::

    CdpError
    ├── NotFoundError
    │   ├── InventoryNotFoundError    a datacenter, cluster, host, pool or folder named in the plan
    │   ├── DatastoreMissingError     the recovery datastore is not in the datacenter
    │   └── PortGroupMissingError     a mapped port group does not exist
    ├── PreconditionError
    │   ├── HostUnusableError         host disconnected or in maintenance mode
    │   ├── VmAlreadyRegisteredError  a .vmx path or VM name is already in the inventory
    │   ├── ReadinessError            one or more readiness checks failed
    │   └── OperationStateError       the step log does not allow the command
    ├── StorageFullError
    │   └── DatastoreFullError        not enough room on the recovery datastore
    └── RemoteError
        └── VSphereError              vCenter answered with a fault
            ├── VCenterUnreachableError   no connection (refused, DNS, timeout, dropped)
            ├── VCenterTlsError           the certificate is not trusted
            └── VCenterLoginError         bad credentials

pyVmomi faults and socket errors are translated into these once, in ``vsphere/``.
"""

from __future__ import annotations

from cdp.errors import NotFoundError, PreconditionError, RemoteError, StorageFullError


class InventoryNotFoundError(NotFoundError):
    """A vSphere object the plan names does not exist."""


class DatastoreMissingError(NotFoundError):
    """The recovery datastore is missing (or not mounted on the standby hosts)."""


class PortGroupMissingError(NotFoundError):
    """A port group named by the plan's network mappings does not exist."""


class HostUnusableError(PreconditionError):
    """A standby host cannot run VMs now (disconnected or in maintenance mode)."""


class VmAlreadyRegisteredError(PreconditionError):
    """The .vmx path (or the VM name) is already registered in vCenter."""


class ReadinessError(PreconditionError):
    """Readiness checks failed; the operation did not start."""


class OperationStateError(PreconditionError):
    """The plan's step log does not allow this command now (e.g. no test to stop)."""


class DatastoreFullError(StorageFullError):
    """The recovery datastore has less room than the images need."""


class VSphereError(RemoteError):
    """vCenter answered a call with a fault; ``code`` is the fault's name."""

    def __init__(self, code: str, message: str, *, hint: str = "") -> None:
        super().__init__(code, message)
        if hint:
            self.hint = hint


class VCenterUnreachableError(VSphereError):
    """No connection to vCenter (refused, unknown name, timeout, dropped)."""


class VCenterTlsError(VSphereError):
    """vCenter's TLS certificate is not trusted by the plan's TLS settings."""


class VCenterLoginError(VSphereError):
    """vCenter rejected the user name or password."""
