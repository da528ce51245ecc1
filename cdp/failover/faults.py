"""vSphere faults and connection errors, translated once into cdp errors with hints.

Faults are matched by the names in their class tree (``vim.fault.AlreadyExists`` ->
``AlreadyExists``), so this module needs no pyVmomi import: ``vsphere/`` stays the only
one. :func:`translated` wraps every vCenter call of ``vsphere/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ssl
from collections.abc import Iterator
from xml.parsers.expat import ExpatError

from cdp.errors import CdpError, NotFoundError, PreconditionError
from cdp.failover.errors import (
    DatastoreFullError,
    DatastoreMissingError,
    HostUnusableError,
    VCenterLoginError,
    VCenterTlsError,
    VCenterUnreachableError,
    VmAlreadyRegisteredError,
    VSphereError,
)
from cdp.failover.plan import VCenterSettings

_FAULTS: dict[str, tuple[type[CdpError], str]] = {
    "AlreadyExists": (
        VmAlreadyRegisteredError,
        "unregister it first, or roll back the failover that registered it",
    ),
    "DuplicateName": (VmAlreadyRegisteredError, "a VM of that name exists in the folder"),
    "HostNotConnected": (HostUnusableError, "reconnect the host or remove it from the plan"),
    "HostNotReachable": (HostUnusableError, "reconnect the host or remove it from the plan"),
    "InvalidHostState": (HostUnusableError, "take the host out of maintenance mode"),
    "InvalidDatastore": (DatastoreMissingError, "mount the recovery datastore on the hosts"),
    "InvalidDatastorePath": (DatastoreMissingError, "check recovery.datastore.name"),
    "InaccessibleDatastore": (DatastoreMissingError, "the datastore is not accessible"),
    "FileNotFound": (NotFoundError, "the file is missing on the datastore"),
    "NotFound": (NotFoundError, ""),
    "ManagedObjectNotFound": (NotFoundError, "the object vanished from vCenter meanwhile"),
    "InvalidPowerState": (PreconditionError, "power the VM off first"),
    "TaskInProgress": (PreconditionError, "another task runs on this object; retry"),
    "InsufficientResourcesFault": (PreconditionError, "free CPU/memory on the standby hosts"),
}
"""Fault name -> (cdp error, hint); the first name found walking the fault's class tree."""
_PERMISSION = ("NoPermission", "NotAuthenticated")


def _names(exc: BaseException) -> list[str]:
    """Short class names of an exception's class tree, most specific first."""
    return [cls.__name__.rsplit(".", 1)[-1] for cls in type(exc).__mro__]


def fault_error(exc: BaseException, what: str) -> CdpError:
    """A cdp error for a vSphere fault (``exc`` is a ``vmodl.MethodFault``)."""
    name = _names(exc)[0]
    msg = getattr(exc, "msg", "") or name
    for cls_name in _names(exc):
        if cls_name == "NoDiskSpace":
            return DatastoreFullError(what, f"{name}: {msg}")
        if cls_name in _FAULTS:
            err_cls, hint = _FAULTS[cls_name]
            return err_cls(f"{what}: {name}: {msg}", hint=hint)
    if name in _PERMISSION:
        return VSphereError(
            "PERMISSION_DENIED",
            f"{what}: {msg}",
            hint="grant the cdp user the privileges listed in docs/FAILOVER.md",
        )
    return VSphereError(name, f"{what}: {msg}")


@contextlib.contextmanager
def translated(settings: VCenterSettings, what: str) -> Iterator[None]:
    """Turn vSphere faults and connection errors raised inside into cdp errors."""
    where = f"vCenter {settings.host}:{settings.port}"
    try:
        yield
    except CdpError:
        raise
    except Exception as exc:
        names = _names(exc)
        if "InvalidLogin" in names:
            raise VCenterLoginError(
                "UNAUTHENTICATED",
                f"{where}: {what}: login failed (user name or password wrong)",
                hint="check the credentials the plan names (vcenter.credentials)",
            ) from exc
        if "MethodFault" in names:
            raise fault_error(exc, what) from exc
        if isinstance(exc, ssl.SSLCertVerificationError) or "ThumbprintMismatchException" in names:
            raise _tls_error(settings, where, exc) from exc
        if isinstance(exc, OSError | http.client.HTTPException | ExpatError):
            raise VCenterUnreachableError(
                "UNAVAILABLE",
                f"{where}: {what}: {type(exc).__name__}: {exc}",
                hint="check vcenter.url, DNS, the network path and that vCenter runs",
            ) from exc
        raise


def _tls_error(settings: VCenterSettings, where: str, exc: Exception) -> VCenterTlsError:
    pin = server_thumbprint(settings.host, settings.port, settings.timeout_s)
    seen = f"; the server's certificate has SHA-256 thumbprint {pin}" if pin else ""
    return VCenterTlsError(
        "TLS",
        f"{where}: certificate not trusted ({getattr(exc, 'reason', '') or exc}){seen}",
        hint="add the issuing CA as vcenter.tls.ca_file, or, after checking the thumbprint "
        "with the vCenter admin, pin it as vcenter.tls.thumbprint; verify: false is for labs",
    )


def server_thumbprint(host: str, port: int, timeout_s: float) -> str:
    """SHA-256 of the certificate a TLS server presents (no trust decision); "" on error."""
    try:
        pem = ssl.get_server_certificate((host, port), timeout=timeout_s)
    except OSError:
        return ""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
