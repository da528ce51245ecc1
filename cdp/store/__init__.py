"""Implementations of the :class:`cdp.index.Index` seam."""
