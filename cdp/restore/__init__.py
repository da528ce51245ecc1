"""Restore points: what an operator may ask for, and the images they name.

Modules: ``spec`` (the ``--at`` grammar, times and bookmark names; pure), ``catalog``
(points, gaps, timeline of one journal), ``history`` (a group's history across its
members, read through the ``MemberView`` Protocol), ``image`` (point-in-time images:
base plus journal). Never imports the target, the source or grpc.
"""
