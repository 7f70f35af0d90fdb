"""The server: accepting, the handshake, listening, shutdown, signals, security.

syncws/server.py, _listen.py, _trouble.py, request.py, auth.py and _signals.py.
"""
