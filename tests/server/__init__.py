"""The server: accepting, the handshake, listening, shutdown, signals, security.

syncws/server.py, _accept.py, _handler_threads.py, _listen.py, _trouble.py, request.py,
_websocket_request.py, _serve_options.py, _read_request.py, _server_tls.py, auth.py and
_signals.py.
"""
