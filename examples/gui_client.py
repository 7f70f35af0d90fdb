"""A Tkinter chat client for ``examples/chat_server.py``.

Usage::

    python examples/chat_server.py &
    python examples/gui_client.py [ws://127.0.0.1:8765/]

Type a line and press Enter (or click Send); Ctrl-Q quits. Tkinter must only be used
from the thread that runs its main loop, and that thread must never block, or the
window freezes. So the client does not wait for messages: a ``syncws.MessageNotifier``
gives it a file descriptor that becomes readable when a message arrives, Tk watches it
along with the mouse and the keyboard (``createfilehandler``), and ``on_readable`` takes
what has arrived, without waiting. The window does nothing at all while nothing happens.
(Tk on Windows cannot watch descriptors: there the client looks every 50 milliseconds.)
"""

from __future__ import annotations

import argparse
import sys
import tkinter as tk
from collections.abc import Sequence
from tkinter import scrolledtext

import syncws
from syncws.client import redact_url

MAX_PER_CALL = 100  # messages shown per call at most, so a flood cannot freeze the window
POLL_MS = 50  # where Tk cannot watch a descriptor: how often to look for messages
SEND_TIMEOUT = 5.0  # sending only blocks if the server stops reading; give up after this


class ChatWindow:
    """A text area showing the conversation, an entry line and a Send button."""

    def __init__(self, root: tk.Tk, ws: syncws.WebSocketConnection, url: str) -> None:
        self.root = root
        self.ws = ws
        self.url = url
        root.title(f"syncws chat: {url}")
        self.log = scrolledtext.ScrolledText(root, width=70, height=20, state="disabled")
        self.entry = tk.Entry(root)
        self.button = tk.Button(root, text="Send", command=self.send)
        self.log.grid(row=0, column=0, columnspan=2, sticky="nsew")
        self.entry.grid(row=1, column=0, sticky="ew")
        self.button.grid(row=1, column=1)
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)
        self.entry.bind("<Return>", lambda _event: self.send())
        root.bind("<Control-q>", lambda _event: root.destroy())
        self.entry.focus_set()
        self.show(f"connected to {url}")
        self.notifier: syncws.MessageNotifier | None = syncws.MessageNotifier(ws)
        # createfilehandler exists where Tk can watch descriptors (not on Windows).
        self.watching = hasattr(root, "createfilehandler")
        if self.watching:
            root.createfilehandler(self.notifier, tk.READABLE, self.on_readable)
        else:
            root.after(POLL_MS, self.poll)

    def show(self, line: str) -> None:
        self.log.configure(state="normal")
        self.log.insert("end", line + "\n")
        self.log.configure(state="disabled")
        self.log.see("end")

    def on_readable(self, _file: object = None, _mask: int = 0) -> None:
        """Called by Tk when the notifier's descriptor is readable: messages wait."""
        if self.notifier is None:
            return
        try:
            messages = self.notifier.take(limit=MAX_PER_CALL)  # never waits
        except syncws.ConnectionClosed:
            self.disconnected()
            return
        for message in messages:
            self.show(message if isinstance(message, str) else repr(message))

    def poll(self) -> None:
        self.on_readable()
        if self.notifier is not None:
            self.root.after(POLL_MS, self.poll)

    def stop_watching(self) -> None:
        if self.notifier is not None:
            if self.watching:
                self.root.deletefilehandler(self.notifier)
            self.notifier.close()
            self.notifier = None

    def disconnected(self) -> None:
        self.stop_watching()
        self.show(f"disconnected: {self.ws.close_reason}")
        self.root.title(f"syncws chat: {self.url} (disconnected)")
        self.entry.configure(state="disabled")
        self.button.configure(state="disabled")

    def send(self) -> None:
        text = self.entry.get()
        if not text:
            return
        try:
            self.ws.send_message(text, timeout=SEND_TIMEOUT)
        except (syncws.ConnectionClosed, TimeoutError):
            self.disconnected()
            return
        self.entry.delete(0, "end")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tkinter WebSocket chat client.")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8765/", help="%(default)s")
    args = parser.parse_args(argv)
    try:
        # A short disconnect_timeout keeps closing the window quick.
        ws = syncws.connect(args.url, connect_timeout=10, disconnect_timeout=2)
    except (syncws.WebSocketError, OSError, ValueError) as exc:
        print(f"error: cannot connect to {redact_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    try:
        root = tk.Tk()
        window = ChatWindow(root, ws, redact_url(args.url))
        try:
            root.mainloop()
        finally:
            if window.notifier is not None:
                window.notifier.close()
    finally:
        ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
