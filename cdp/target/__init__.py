"""The replication target: sessions, intake, group commit, apply, replica extents.

Modules: ``target`` (the registry of members, their lifecycle and task loops),
``member`` (one member journal of a group and its session behaviour), ``config``
(:class:`TargetConfig` and its defaults), ``intake``
(validation of an incoming batch before anything is written), ``committer`` (group
commit: append, one fsync, ack), ``applier`` (expired records into the base replica),
``replica`` (replica VM folders and flat extents), ``resync_progress`` (a resync as the
target sees it), ``seal`` (a planned failover's seal of a member). Never imports the
source side or grpc.
"""
