"""Simulated protected hosts: VMs with VMDK-backed disks, a VAIO-style filter chain
that splits every write into a source journal, and seeded workloads.

sim uses cdp (codec, buffer, shipper, vmdk); cdp never imports sim, except the CLI
commands that drive it (``cdp sim``, ``cdp demo``).
"""
