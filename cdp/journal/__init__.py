"""The journal: append-only segments of write records and the index derived from them.

Modules: ``journal`` (one group's segments, durable point and index), ``segment``
(segment files, scanned and verified on open), ``seal`` (keyring, segment headers, the
record chain, AES-GCM), ``verify`` (``cdp journal verify``'s end-to-end check),
``index`` (the index seam), ``store/`` (its implementations: RocksDB, in-memory).
Imports only the value modules.
"""
