"""The client: URLs, the opening handshake, connecting address after address, TLS.

syncws/client.py, _client_handshake.py, _url.py and _connect.py.
"""
