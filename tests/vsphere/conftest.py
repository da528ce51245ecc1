"""Fixtures that run govmomi's vCenter simulator (deploy/vcsim) for vSphere tests.

``vcsim``        one simulator for the whole session (read-mostly tests).
``vcsim_fresh``  a new simulator per test (tests that change the inventory);
                 startup is ~0.05 s once the binary is built, so this is cheap.
``vcsim_binary`` path of the binary, for tests that start their own inventory
                 with ``harness.start_vcsim``.
``site``         a recovery site for failover tests (drsite.DrSite): a fresh vcsim whose
                 cluster mounts a real in-process target's replica folder, with group g1
                 (db01, app01) written by the simulator, and a plan writer.

The binary is built once per session by deploy/vcsim/build.sh (GOPATH-mode Go
build against the Debian govmomi package, ~12 s cold, instant when cached).
Every test collected under tests/vsphere gets the ``vsphere`` marker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import Inventory, Vcsim, build_vcsim, start_vcsim

if TYPE_CHECKING:
    from .drsite import DrSite


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vsphere: needs the vcsim simulator")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.vsphere)


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    """Path of the built vcsim-cdp binary (built at most once per session)."""
    return build_vcsim()


@pytest.fixture(scope="session")
def vcsim(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """A simulator shared by the session, with the default ``Inventory()``; do not mutate it."""
    sim = start_vcsim(vcsim_binary, Inventory(), tmp_path_factory.mktemp("vcsim") / "vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
def vcsim_fresh(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """A private simulator for one test (default ``Inventory()``), free to mutate."""
    sim = start_vcsim(vcsim_binary, Inventory(), tmp_path_factory.mktemp("vcsim") / "vcsim.log")
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
async def site(vcsim_fresh: Vcsim, tmp_path: Path) -> AsyncIterator[DrSite]:
    """A recovery site: vcsim mounting a real target's replicas, group g1 written by the sim."""
    from .drsite import make_site  # the target and the simulator load only for these tests

    s = await make_site(vcsim_fresh, tmp_path)
    try:
        yield s
    finally:
        await s.close()
