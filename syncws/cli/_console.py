r"""Output of ``connect``: styled lines on a terminal, plain lines in a pipe.

On a terminal every line has a timestamp and a colour (received, sent, information,
error) and a ``> `` prompt waits for input. Otherwise standard output carries the
received messages only, one after the other, and everything else goes to standard
error, so that the output can be piped into another program.

What the server sends never reaches a terminal raw: on a terminal, control characters
(C0 but tab and line feed, DEL, C1) are shown as escapes such as ``\x1b``, so that a
message cannot move the cursor, rewrite the screen or set the window title. A line
feed in a message starts an indented continuation line; in a close reason or an error
it is shown as ``\n``, so that those stay on one line. Output that is not a terminal
gets the text unchanged.
"""

from __future__ import annotations

import datetime
import os
import threading
from typing import TextIO

__all__ = ["Console", "escape_controls", "for_stream", "format_message"]

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
#: Width of ``HH:MM:SS.mmm < ``: continuation lines of a message start there.
_INDENT = " " * 15

_SHORT_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
#: C0 controls, DEL and C1 controls, each to a visible escape.
_ESCAPES = {
    code: _SHORT_ESCAPES.get(code, f"\\x{code:02x}")
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
}
#: The same, but tab and line feed stay as they are (they cannot rewrite the screen).
_ESCAPES_IN_MESSAGES = {code: text for code, text in _ESCAPES.items() if code not in (0x09, 0x0A)}


def escape_controls(text: str, keep_line_feeds: bool = False) -> str:
    r"""Show the control characters of ``text`` as escapes, for a terminal.

    C0 controls (U+0000-U+001F), DEL (U+007F) and C1 controls (U+0080-U+009F)
    become ``\t``, ``\n``, ``\r`` or ``\xNN``: written to a terminal, none of them
    can move the cursor, change colours or the window title, or clear the screen.

    :param keep_line_feeds: leave tab and line feed as they are (for the body of a
        message, shown over several lines).
    """
    return text.translate(_ESCAPES_IN_MESSAGES if keep_line_feeds else _ESCAPES)


def for_stream(text: str, stream: TextIO) -> str:
    """``text`` escaped with :func:`escape_controls` if ``stream`` is a terminal, else as is."""
    return escape_controls(text) if stream.isatty() else text


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
        # Errors may reach a terminal even when the messages go to a pipe.
        self._escape_errors = self.interactive or stderr.isatty()
        # https://no-color.org: timestamps stay, colours go.
        self._colour = self.interactive and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self._prompting = False
        self._silent = False

    def silence(self, timeout: float) -> None:
        """Write nothing more from now on: the process exits while threads still print.

        Waits up to ``timeout`` seconds for a line being written, so that no thread
        is inside a write when the interpreter shuts down.
        """
        acquired = self._lock.acquire(timeout=timeout)
        self._silent = True
        if acquired:
            self._lock.release()

    def _style(self, colour: str, text: str) -> str:
        return f"{colour}{text}{_RESET}" if self._colour else text

    def _line(self, colour: str, mark: str, text: str, replace_input: bool = False) -> None:
        """Write one styled line above the prompt (terminal only).

        ``text`` must be escaped already; a line feed in it starts an indented line.
        """
        text = text.replace("\n", "\n" + _INDENT)
        now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        clear = _CLEAR_PREVIOUS_LINE if replace_input else _CLEAR_LINE
        line = f"{self._style(_DIM, now)} {self._style(colour, f'{mark} {text}')}\n"
        with self._lock:
            if self._silent:
                return
            self._out.write(clear + line + (PROMPT if self._prompting else ""))
            self._out.flush()

    def prompt(self) -> None:
        """Show the input prompt from now on (terminal only)."""
        if self.interactive:
            with self._lock:
                if self._silent:
                    return
                self._prompting = True
                self._out.write(PROMPT)
                self._out.flush()

    def end_prompt(self) -> None:
        """Stop showing the prompt and erase it (terminal only)."""
        if self.interactive:
            with self._lock:
                self._prompting = False
                if self._silent:
                    return
                self._out.write(_CLEAR_LINE)
                self._out.flush()

    def received(self, message: str | bytes) -> None:
        """Show a message from the server."""
        if self.interactive:
            self._line(_RECEIVED, "<", escape_controls(format_message(message), True))
        else:
            with self._lock:
                if self._silent:
                    return
                self._out.write(format_message(message) + "\n")
                self._out.flush()

    def sent(self, message: str) -> None:
        """Show a line typed and sent again, timestamped, in place of the input."""
        if self.interactive:
            self._line(_SENT, ">", escape_controls(message), replace_input=True)

    def info(self, text: str) -> None:
        """Show something worth knowing: connected, closed, latency."""
        if self.interactive:
            self._line(_INFO, "*", escape_controls(text))
        else:
            self._plain_error(text)

    def error(self, text: str) -> None:
        """Show ``error: text``: on standard error, or in red on a terminal."""
        if self.interactive:
            self._line(_ERROR, "!", escape_controls(f"error: {text}"))
        else:
            self._plain_error(f"error: {text}")

    def _plain_error(self, text: str) -> None:
        if self._escape_errors:
            text = escape_controls(text)
        with self._lock:
            if self._silent:
                return
            self._err.write(text + "\n")
            self._err.flush()
