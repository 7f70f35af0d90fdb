"""The connection: messages, closing, pings, flow control, limits, reading turns, threads.

syncws/connection.py and its parts (_protocol.py, _reader.py, _sender.py, _receiver.py,
_starter.py, _fork.py), and the layers under them (_transport.py, _messages.py,
_readturns.py, _framing.py, _assembler.py, _timers.py, _deflate.py, _closing.py, _latch.py).
"""
