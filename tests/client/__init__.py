"""The client: URLs, the opening handshake, connecting address after address, TLS.

syncws/client.py and _connect.py.
"""
