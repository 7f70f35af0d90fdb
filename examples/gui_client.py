"""A Tkinter chat client for ``examples/chat_server.py``.

Usage::

    python examples/chat_server.py &
    python examples/gui_client.py [ws://127.0.0.1:8765/]

Type a line and press Enter (or click Send). Tkinter must only be used from the thread
that runs its main loop, and that thread must never block, or the window freezes. So the
client does not wait for messages: every 50 milliseconds ``root.after`` runs ``poll``,
which takes whatever has arrived with ``get_message(timeout=0)`` and returns at once.
"""

from __future__ import annotations

import argparse
import sys
import tkinter as tk
from collections.abc import Sequence
from tkinter import scrolledtext

import syncws

POLL_MS = 50  # how often the GUI looks for new messages
MAX_PER_POLL = 100  # messages shown per poll at most, so a flood cannot freeze the window
SEND_TIMEOUT = 5.0  # sending only blocks if the server stops reading; give up after this


class ChatWindow:
    """A text area showing the conversation, an entry line and a Send button."""

    def __init__(self, root: tk.Tk, ws: syncws.WebSocketConnection, url: str) -> None:
        self.root = root
        self.ws = ws
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
        self.entry.focus_set()
        self.show(f"connected to {url}")
        root.after(POLL_MS, self.poll)

    def show(self, line: str) -> None:
        self.log.configure(state="normal")
        self.log.insert("end", line + "\n")
        self.log.configure(state="disabled")
        self.log.see("end")

    def disconnected(self) -> None:
        self.show(f"disconnected: {self.ws.close_reason}")
        self.entry.configure(state="disabled")
        self.button.configure(state="disabled")

    def poll(self) -> None:
        for _ in range(MAX_PER_POLL):
            try:
                message = self.ws.get_message(timeout=0)  # never waits
            except TimeoutError:
                break  # nothing (more) has arrived yet
            except syncws.ConnectionClosed:
                self.disconnected()
                return  # stop polling
            self.show(message if isinstance(message, str) else repr(message))
        self.root.after(POLL_MS, self.poll)

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
        print(f"error: cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        root = tk.Tk()
        ChatWindow(root, ws, args.url)
        root.mainloop()
    finally:
        ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
