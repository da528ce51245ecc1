"""``cdp failover verify --at last-clean`` against vcsim and a real target: after an
outside tool marks the newest writes compromised, the verification boots the newest point
before the onset, not the latest (the detector's training is played by
``Verdicts.start_watching``)."""

from __future__ import annotations

import os
import shutil

from cdp.failover.verify import Verifier
from cdp.v1 import replication_pb2 as pb

from .drsite import GROUP, DrSite

QEMU_IMG = shutil.which("qemu-img")


async def test_verify_at_last_clean_boots_the_point_before_the_onset(site: DrSite) -> None:
    site.target.target.members(GROUP)[0].verdicts.start_watching(1)
    clean = (await site.target.client.status(GROUP)).groups[0].durable_seq  # 200 writes
    await site.source.write(50)  # the "attack": writes after the last clean point
    await site.target.client.mark_compromised(
        pb.MarkCompromisedRequest(group_id=GROUP, start_seq=clean + 1, reason="EDR alert 3")
    )
    orch = site.orchestrator(site.plan())
    outcome = await Verifier(orch, QEMU_IMG, {"PATH": os.environ["PATH"]}).run("last-clean")
    rec = outcome.record
    assert outcome.error is None and rec["result"] == "passed", rec
    assert rec["points"][GROUP]["seq"] == clean  # not the latest (clean + 50)
    orch.close()
