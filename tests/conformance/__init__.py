"""Our own RFC 6455 conformance suite (see :mod:`conformance.cases`)."""
