"""The command line, ``python -m syncws`` (syncws/cli/): connect, serve, bench, arguments."""
