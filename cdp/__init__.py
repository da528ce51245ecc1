"""cdp: continuous data protection for VMware vSphere.

Every guest write is journaled to a replication target that keeps replica VMDKs and a
rolling history of restore points. See docs/ARCHITECTURE.md for the layer picture.
"""

__version__ = "0.1.0"
