"""What ``cdp failover verify`` looks at on one recovered VM besides vCenter's power state.

Two probes, each returning a plain result (never raising for a negative answer):

* :func:`check_disk`: a test image is a valid flat VMDK of the protected disk's size — the
  descriptor parses and names one extent of that capacity, the extent file has exactly
  that many bytes, and (when ``qemu-img`` is installed) ``qemu-img check`` accepts it and
  ``qemu-img info`` reads the same virtual size. ``-U`` (force share) reads the image of
  a running VM without taking its lock.
* :func:`run_hook`: the plan's verification hook, a program run without a shell in its
  own process group; exit status 0 is a pass. At its timeout (or when the operator
  interrupts) the whole group is killed with SIGKILL: a hook is a check, it has nothing
  to finish. Only the last :data:`TAIL_BYTES` of stdout and of stderr are kept.

This module only reads the images; it never writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from cdp.errors import InvalidInputError
from cdp.failover.plan import VerifyHook
from cdp.vmdk import parse_descriptor

TAIL_BYTES = 4096
"""How much of a hook's stdout and of its stderr the record keeps (the end of each)."""
QEMU_IMG_TIMEOUT_S = 120.0
"""``qemu-img check`` reads metadata only; a flat image takes milliseconds."""
_READ_CHUNK = 65536
_PIPE_GRACE_S = 5.0
"""After the hook exits, how long to wait for its pipes to close (a stray grandchild)."""


@dataclass(frozen=True)
class DiskCheck:
    """The verdict on one test image."""

    disk: int
    path: str
    """Local path of the descriptor (``<vm>-test/<vm>-test_<n>.vmdk``)."""
    expected_bytes: int
    """The protected disk's capacity, as the target's group spec gives it."""
    size_bytes: int
    """The extent file's size; -1 when it is missing."""
    qemu_img: str
    """``ok``, ``not installed``, or what qemu-img objected to."""
    passed: bool
    detail: str


@dataclass(frozen=True)
class HookResult:
    """What a verification hook did."""

    command: tuple[str, ...]
    passed: bool
    exit_code: int | None
    """None when it could not start or was killed."""
    timed_out: bool
    interrupted: bool
    seconds: float
    stdout_tail: str
    stderr_tail: str
    detail: str


# ---------------------------------------------------------------- disk images


def check_disk(path: str, disk: int, expected_bytes: int, qemu_img: str | None) -> DiskCheck:
    """Check one test image (blocking: run it in a thread)."""
    size, problem = _structure(path, expected_bytes)
    verdict = "not installed"
    if qemu_img is not None and not problem:
        verdict = _qemu_verdict(qemu_img, path, expected_bytes)
        problem = "" if verdict == "ok" else f"qemu-img: {verdict}"
    detail = problem or f"valid VMDK, {expected_bytes} bytes"
    return DiskCheck(disk, path, expected_bytes, size, verdict, not problem, detail)


def _structure(path: str, expected_bytes: int) -> tuple[int, str]:
    """The extent's size and what is wrong with descriptor or extent ("" if nothing)."""
    try:
        with open(path, encoding="utf-8") as f:
            descriptor = parse_descriptor(f.read(64 * 1024))
    except OSError as exc:
        return -1, f"descriptor {os.path.basename(path)}: {exc.strerror}"
    except (InvalidInputError, UnicodeDecodeError) as exc:
        return -1, f"descriptor {os.path.basename(path)} is not a flat VMDK descriptor: {exc}"
    if descriptor.capacity_bytes != expected_bytes:
        return -1, (
            f"descriptor says {descriptor.capacity_bytes} bytes, the protected disk has "
            f"{expected_bytes}"
        )
    extent = os.path.join(os.path.dirname(path), descriptor.extent_name)
    try:
        size = os.stat(extent).st_size
    except OSError as exc:
        return -1, f"extent {descriptor.extent_name}: {exc.strerror}"
    if size != expected_bytes:
        return size, f"extent {descriptor.extent_name} has {size} bytes, expected {expected_bytes}"
    return size, ""


def _qemu_verdict(qemu_img: str, path: str, expected_bytes: int) -> str:
    """``ok``, or qemu-img's objection (check, then the virtual size info reads)."""
    check = _qemu(qemu_img, "check", path)
    if check.returncode != 0:
        return _last_line(check.stderr or check.stdout) or f"check exit {check.returncode}"
    info = _qemu(qemu_img, "info", path, "--output=json")
    try:
        virtual = int(json.loads(info.stdout)["virtual-size"])
    except (ValueError, KeyError, TypeError):
        return _last_line(info.stderr) or "info gave no virtual size"
    return (
        "ok" if virtual == expected_bytes else f"virtual size {virtual}, expected {expected_bytes}"
    )


def _qemu(qemu_img: str, verb: str, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [qemu_img, verb, "-U", "-f", "vmdk", *extra, path],
            capture_output=True,
            text=True,
            timeout=QEMU_IMG_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess([qemu_img], 1, "", str(exc))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# ---------------------------------------------------------------- hooks


async def run_hook(
    hook: VerifyHook, env: dict[str, str], cwd: str, stop: asyncio.Event
) -> HookResult:
    """Run the hook to its end, its timeout, or ``stop``; kill its process group then."""
    t0 = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *hook.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        detail = f"cannot start {hook.command[0]}: {exc.strerror or exc}"
        return HookResult(hook.command, False, None, False, False, 0.0, "", "", detail)
    assert proc.stdout is not None and proc.stderr is not None
    tails = [asyncio.create_task(_tail(s)) for s in (proc.stdout, proc.stderr)]
    exited = asyncio.ensure_future(proc.wait())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({exited, stopped}, timeout=hook.timeout_s, return_when="FIRST_COMPLETED")
    finally:
        killed = not exited.done()
        interrupted = killed and stopped.done()
        stopped.cancel()
        if killed:
            _kill_group(proc.pid)
        await exited
    timed_out = killed and not interrupted
    out, err = await _collect(tails)
    seconds = round(time.monotonic() - t0, 3)
    code = None if killed else proc.returncode
    detail = _hook_detail(code, timed_out, interrupted, hook.timeout_s)
    return HookResult(
        hook.command, code == 0, code, timed_out, interrupted, seconds, out, err, detail
    )


def _hook_detail(code: int | None, timed_out: bool, interrupted: bool, timeout_s: float) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g} s (killed)"
    if interrupted:
        return "interrupted (killed)"
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return "passed (exit 0)" if code == 0 else f"failed (exit {code})"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _tail(stream: asyncio.StreamReader) -> str:
    """Read a pipe to its end, keeping only the last TAIL_BYTES."""
    kept = b""
    while chunk := await stream.read(_READ_CHUNK):
        kept = (kept + chunk)[-TAIL_BYTES:]
    return kept.decode(errors="replace")


async def _collect(tails: list[asyncio.Task[str]]) -> tuple[str, str]:
    """The two tails; a pipe a stray grandchild keeps open is given up after a grace."""
    done, pending = await asyncio.wait(tails, timeout=_PIPE_GRACE_S)
    for t in pending:
        t.cancel()
    out = [t.result() if t in done else "(output still open, not read)" for t in tails]
    return out[0], out[1]
