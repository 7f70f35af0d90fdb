"""Output of ``connect``: styled lines on a terminal, plain lines in a pipe.

On a terminal every line has a timestamp and a colour (received, sent, information,
error) and a ``> `` prompt waits for input. Otherwise standard output carries the
received messages only, one after the other, and everything else goes to standard
error, so that the output can be piped into another program.
"""

from __future__ import annotations

import datetime
import os
import threading
from typing import TextIO

__all__ = ["Console", "format_message"]

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_RECEIVED = "\x1b[32m"  # green
_SENT = "\x1b[34m"  # blue
_INFO = "\x1b[33m"  # yellow
_ERROR = "\x1b[31m"  # red
#: Back to the start of the line, then erase it (the prompt and what was typed).
_CLEAR_LINE = "\r\x1b[K"
#: Up one line (to the line just entered), then erase it.
_CLEAR_PREVIOUS_LINE = "\x1b[1A\r\x1b[K"
PROMPT = "> "


def format_message(message: str | bytes) -> str:
    """Text as it is; binary as ``[binary N bytes]`` followed by its hexadecimal dump."""
    if isinstance(message, str):
        return message
    return f"[binary {len(message)} bytes] {message.hex()}"


class Console:
    """Writes the lines of a ``connect`` session; thread-safe.

    :param stdout: where messages go (a terminal or a pipe).
    :param stderr: where information and errors go when ``stdout`` is not a terminal.
    :param interactive: style the output (default: whether ``stdout`` is a terminal).
    """

    def __init__(self, stdout: TextIO, stderr: TextIO, interactive: bool | None = None) -> None:
        self._out = stdout
        self._err = stderr
        self.interactive = stdout.isatty() if interactive is None else interactive
        # https://no-color.org: timestamps stay, colours go.
        self._colour = self.interactive and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self._prompting = False

    def _style(self, colour: str, text: str) -> str:
        return f"{colour}{text}{_RESET}" if self._colour else text

    def _line(self, colour: str, mark: str, text: str, replace_input: bool = False) -> None:
        """Write one styled line above the prompt (terminal only)."""
        now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        clear = _CLEAR_PREVIOUS_LINE if replace_input else _CLEAR_LINE
        line = f"{self._style(_DIM, now)} {self._style(colour, f'{mark} {text}')}\n"
        with self._lock:
            self._out.write(clear + line + (PROMPT if self._prompting else ""))
            self._out.flush()

    def prompt(self) -> None:
        """Show the input prompt from now on (terminal only)."""
        if self.interactive:
            with self._lock:
                self._prompting = True
                self._out.write(PROMPT)
                self._out.flush()

    def end_prompt(self) -> None:
        """Stop showing the prompt and erase it (terminal only)."""
        if self.interactive:
            with self._lock:
                self._prompting = False
                self._out.write(_CLEAR_LINE)
                self._out.flush()

    def received(self, message: str | bytes) -> None:
        """Show a message from the server."""
        if self.interactive:
            self._line(_RECEIVED, "<", format_message(message))
        else:
            with self._lock:
                self._out.write(format_message(message) + "\n")
                self._out.flush()

    def sent(self, message: str) -> None:
        """Show a line typed and sent again, timestamped, in place of the input."""
        if self.interactive:
            self._line(_SENT, ">", message, replace_input=True)

    def info(self, text: str) -> None:
        """Show something worth knowing: connected, closed, latency."""
        if self.interactive:
            self._line(_INFO, "*", text)
        else:
            self._plain_error(text)

    def error(self, text: str) -> None:
        """Show ``error: text``: on standard error, or in red on a terminal."""
        if self.interactive:
            self._line(_ERROR, "!", f"error: {text}")
        else:
            self._plain_error(f"error: {text}")

    def _plain_error(self, text: str) -> None:
        with self._lock:
            self._err.write(text + "\n")
            self._err.flush()
