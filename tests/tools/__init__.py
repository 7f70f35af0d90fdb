"""The tools built on connections: broadcast, notify, callbacks, syncws.testing, the plugin."""
