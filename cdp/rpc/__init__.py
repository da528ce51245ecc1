"""The gRPC edge: the servicer on the target and the client the shipper uses."""
