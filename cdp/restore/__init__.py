"""Restore points: what an operator may ask for, and the images they name.

Modules: ``catalog`` (points, gaps, timeline of one journal), ``history`` (a group's
history across its members), ``image`` (point-in-time images: base plus journal).
"""
