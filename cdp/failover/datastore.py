"""The recovery datastore: attach the target's replica folder to the standby hosts, prove it.

The target's replica folder (``recovery.datastore.path``, the target's
``<data_dir>/replicas``) carries a marker file ``.cdp-target-<id>`` with a random id
made once (:func:`ensure_marker`, by ``cdp failover datastore attach``, which runs where
that folder is local, like every failover command: failover writes the recovered VMs'
folders there). ``attach`` mounts the folder as the datastore ``recovery.datastore.name``
on every standby host (``CreateNasDatastore`` when the plan gives ``nfs``, else
``CreateLocalDatastore``, what vcsim offers); ``check`` proves each usable standby host
sees *this* folder: its datastore browser (``SearchDatastore_Task``) must list exactly the
marker found in the local folder, not merely a datastore of the right name.

``relocate`` moves the plan's VMs off a cdp datastore with ``RelocateVM_Task`` (Storage
vMotion) after failback or a committed failover.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import Any

from cdp.errors import CdpError, PreconditionError
from cdp.failover.checks import FAIL, PASS, WARN, CheckRow
from cdp.failover.plan import Plan, RecoverySite
from cdp.failover.vcenter import VCenter
from cdp.fsutil import fsync_dir, write_atomic

MARKER_PREFIX = ".cdp-target-"
ROW = "datastore proof"


def read_marker(path: str) -> str | None:
    """The marker file name in the replica folder, or None; two markers are an error."""
    try:
        names = sorted(n for n in os.listdir(path) if n.startswith(MARKER_PREFIX))
    except FileNotFoundError:
        return None
    if len(names) > 1:
        raise PreconditionError(
            f"{path} holds {len(names)} cdp markers ({', '.join(names)})",
            hint="keep the one the standby hosts were proven with; delete the others",
        )
    return names[0] if names else None


def ensure_marker(path: str) -> str:
    """The marker file name, made once (``.cdp-target-<32 hex>``, content: the same id)."""
    if not os.path.isdir(path):
        raise PreconditionError(
            f"recovery.datastore.path {path} is not a folder",
            hint="it must be the target's <data_dir>/replicas folder, local to this host",
        )
    found = read_marker(path)
    if found is not None:
        return found
    token = secrets.token_hex(16)
    name = MARKER_PREFIX + token
    write_atomic(os.path.join(path, name), (token + "\n").encode())
    fsync_dir(path)
    return name


async def attach(plan: Plan, connect: Callable[[], VCenter]) -> list[dict[str, Any]]:
    """Mount the replica folder on every standby host; per host what happened."""
    r = plan.recovery
    marker = await asyncio.to_thread(ensure_marker, r.datastore.path)
    vc = await asyncio.to_thread(connect)
    site = await asyncio.to_thread(vc.site, r.datacenter, r.cluster, r.hosts, r.datastore.name)
    if site.missing_hosts:
        raise PreconditionError(f"vCenter has no host {', '.join(site.missing_hosts)}")
    out = []
    for host in site.hosts:
        how = await asyncio.to_thread(
            vc.attach_datastore, r.datacenter, host.name, r.datastore.name, _source(r)
        )
        out.append({"host": host.name, "datastore": r.datastore.name, "done": how})
    return [{**row, "marker": marker} for row in out]


def _source(r: RecoverySite) -> str:
    """``nfs://server/export`` when the plan gives NFS, else the local path (vcsim)."""
    ds = r.datastore
    return f"nfs://{ds.nfs_server}{ds.nfs_export}" if ds.nfs_server else ds.path


async def prove(plan: Plan, connect: Callable[[], VCenter]) -> list[CheckRow]:
    """A row per usable standby host: whether its datastore shows this folder's marker."""
    r = plan.recovery
    try:
        marker = await asyncio.to_thread(read_marker, r.datastore.path)
    except CdpError as exc:
        return [CheckRow(ROW, FAIL, str(exc), getattr(exc, "hint", ""))]
    if marker is None:
        return [
            CheckRow(ROW, WARN, f"no {MARKER_PREFIX}* marker in {r.datastore.path}",
                     "run `cdp failover datastore attach --plan FILE`")
        ]  # fmt: skip
    try:
        vc = await asyncio.to_thread(connect)
        site = await asyncio.to_thread(vc.site, r.datacenter, r.cluster, r.hosts, r.datastore.name)
    except CdpError as exc:
        return [CheckRow(ROW, FAIL, f"vCenter: {exc}")]
    rows = []
    for host in (h for h in site.hosts if h.usable):
        name = f"{ROW} {host.name}"
        try:
            seen = await asyncio.to_thread(
                vc.datastore_files, r.datacenter, host.name, r.datastore.name, MARKER_PREFIX + "*"
            )
        except CdpError as exc:
            rows.append(CheckRow(name, FAIL, f"cannot browse [{r.datastore.name}]: {exc}",
                                 "run `cdp failover datastore attach --plan FILE`"))  # fmt: skip
            continue
        if seen == [marker]:
            rows.append(CheckRow(name, PASS, f"[{r.datastore.name}] shows {marker}"))
        else:
            rows.append(CheckRow(
                name, FAIL,
                f"[{r.datastore.name}] shows {seen or 'no marker'}, the replica folder {marker}",
                "this host's datastore is another folder: remount it on the target's replicas",
            ))  # fmt: skip
    return rows


async def relocate(
    plan: Plan, connect: Callable[[], VCenter], datacenter: str, datastore: str
) -> list[dict[str, Any]]:
    """Storage-vMotion every plan VM (by its live name) onto ``datastore``."""
    vc = await asyncio.to_thread(connect)
    out = []
    for _, vm in plan.vms():
        found = await asyncio.to_thread(vc.find_vm_by_name, datacenter, vm.name)
        if found is None:
            out.append({"vm": vm.name, "done": "not found"})
            continue
        how = await asyncio.to_thread(vc.relocate_vm, found.ref, datacenter, datastore)
        out.append({"vm": vm.name, "ref": found.ref, "done": how})
    return out
