"""The gRPC edge: the servicer on the target and the client the shipper uses.

Modules: ``wire`` (what both ends share: protocol version, message caps, record and
spec codecs), ``server`` (the servicer; domain errors to status in one place),
``client`` (the shipper's transport and the operator calls; imports neither the
server nor the target), ``convert`` (status, timeline, point and plan messages and
their JSON form), ``auth`` (mTLS authorization of every call).
"""
