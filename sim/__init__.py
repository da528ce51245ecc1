"""Simulated protected hosts: VMs, a VAIO-style filter chain, seeded workloads.

VMs have VMDK-backed disks; a filter chain splits every write into a source journal.

sim uses cdp (codec, buffer, shipper, vmdk); cdp never imports sim, except the CLI
commands that drive it (``cdp sim``, ``cdp demo``).
"""
