"""cdp: continuous data protection for VMware vSphere.

Every guest write is journaled to a replication target that keeps replica VMDKs and a
rolling history of restore points. Packages follow the data path: ``source`` (the
protected host's side), ``rpc`` (the gRPC edge), ``target`` (intake, commit, apply),
``journal`` (segments and index), ``restore`` (points and images), ``failover``,
``cli``; ``web`` serves the on-call page. The value modules (``errors``, ``record``,
``codec``, ``group``, ``naming``, ``status``, ``vmdk``, ``vmx``, ``fsutil``, ``logs``,
``tls``, ``authz``) import no package. See docs/ARCHITECTURE.md for the layer picture.
"""

__version__ = "0.1.0"
