"""Implementations of the :class:`cdp.journal.index.Index` seam.

Modules: ``rocksdb`` (the real index, through rocksdict), ``memory`` (for unit tests).
"""
