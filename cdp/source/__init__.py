"""The protected host's side: every guest write buffered, shipped, or tracked dirty.

Modules: ``buffer`` (the bounded source journal buffer, seqs assigned here), ``shipper``
(streams the buffer to a target through a ``Transport`` seam, resumes after any cut),
``protection`` (the per-write state machine: journal, dirty map, resync), ``dirtymap``
(a bitmap of regions written while nothing could be journaled), ``rpo`` (measured RPO and
its statistics). Never imports the target.
"""
