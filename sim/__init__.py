"""Simulated protected hosts: VMs, a VAIO-style filter chain, seeded workloads.

VMs have VMDK-backed disks; a filter chain splits every write into a source journal.

sim uses cdp (codec, buffer, shipper, vmdk); cdp never imports sim, except the CLI
commands that drive it (``cdp sim``, ``cdp demo``).

Modules:

- ``disk``: a VMDK-backed virtual disk (descriptor and flat extent).
- ``filter``: the VAIO-style filter chain and the replication filter.
- ``vm``: simulated VMs and hosts, disks behind a filter chain.
- ``agent``: the guest agent (quiesce gates, application-consistent points).
- ``coordinator``: cross-host consistency for a group spread over hosts.
- ``workload``: seeded synthetic workloads.
- ``trace_workload``: replay of a normalised block trace.
- ``runner``: one run against a target (set up, start behind a barrier, write, drain,
  report), several groups in one process, ``cdp sim run``'s figures.
"""
