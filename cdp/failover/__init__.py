"""Failover orchestration: bring protected VMs up at the recovery site from a restore point.

Modules, from the values inward to the edge (docs/FAILOVER.md tells the whole story):

* ``yamlkeys``     typed access to decoded YAML, naming the key path of a bad value
* ``plan``         the recovery plan file (typed, validated; credentials resolved here)
* ``errors``       the failover leaves of the cdp error tree
* ``vcenter``      the seam to a vCenter (a Protocol and plain facts, no pyVmomi)
* ``replication``  the seam to the replication target (a Protocol and plain facts)
* ``checks``       the readiness check table, pure over gathered facts
* ``steps``        the pure plan of an operation: names, placement, steps, RTO estimate
* ``survey``       read-only fact gathering that feeds the checks and builds the plan
* ``records``      the operation record as typed values (Operation, StepEntry), JSON at the edge
* ``steplog``      the durable JSON step log that makes every operation resumable
* ``actions``      what each step kind does, each safe to run again
* ``orchestrator`` runs operations: survey, gate, execute steps, record each one
* ``faults``       vSphere faults and socket/TLS errors -> cdp errors (by fault name)
* ``vsphere``      the only module that imports pyVmomi (implements ``vcenter.VCenter``)
* ``export``       a disk at a restore point, read from the target, written as a flat VMDK
* ``remote``       ``replication.Replication`` over the gRPC client (``TargetReplication``)
* ``failback``     reverse-protect the recovered VMs and fail over back to the original site
* ``reverse``      the reverse source that streams recovered disks back (failback)
* ``verify``       boot a restore point in the isolated network, check each VM, clean up
* ``probes``       what ``verify`` looks at on a recovered VM (disk image, guest hook)
* ``vcenter_settings`` how a plan reaches a vCenter (URL, TLS trust, credentials)
"""
