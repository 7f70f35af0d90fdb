"""Types of the optional C extension (see syncws/_speedups.c)."""

def apply_mask(
    data: bytes | bytearray | memoryview, key: bytes | bytearray | memoryview, /
) -> bytes:
    """Return ``data`` XORed with the 4-byte ``key`` repeated (RFC 6455, section 5.3)."""
