"""Unit tests of joining a fragmented message (``syncws/_assembler.py``): no sockets."""

from __future__ import annotations

import pytest

from syncws._assembler import MAX_FRAGMENTS, MessageAssembler, MessageOversize, MessageTooBig


def test_a_message_in_one_piece_is_returned_as_it_is() -> None:
    assembler = MessageAssembler(100)
    assert assembler.add("hello", True, True) == "hello"
    assert assembler.add(b"\x00\x01", True, True) == b"\x00\x01"
    assert assembler.add(bytearray(b"ab"), True, True) == b"ab"


def test_the_frames_of_a_message_are_joined() -> None:
    assembler = MessageAssembler(100)
    assert assembler.add("hé", False, True) is None
    assert assembler.add("", False, True) is None
    assert assembler.add("llo ☃", True, True) == "héllo ☃"
    assert assembler.add(b"a", False, False) is None  # Part of a frame.
    assert assembler.add(b"b", False, True) is None
    assert assembler.add(b"c", True, True) == b"abc"


def test_text_is_counted_in_bytes_of_utf8() -> None:
    assembler = MessageAssembler(8)
    assert assembler.add("☃☃", True, True) == "☃☃"  # 6 bytes.
    with pytest.raises(MessageOversize) as caught:
        assembler.add("☃☃☃", True, True)  # 9 bytes.
    assert caught.value.data == "☃☃☃"  # What a stream of it starts with.


def test_the_size_bound_counts_every_frame() -> None:
    assembler = MessageAssembler(10)
    assert assembler.add(b"x" * 6, False, True) is None
    with pytest.raises(MessageOversize):
        assembler.add(b"x" * 5, True, True)
    # What was joined is dropped: the next message starts afresh.
    assert assembler.add(b"y" * 10, True, True) == b"y" * 10


def test_the_frame_bound_stops_endless_empty_frames() -> None:
    assembler = MessageAssembler(100)
    assert assembler.add(b"", False, True) is None
    for _ in range(MAX_FRAGMENTS - 2):
        assembler.add(b"", False, True)
    with pytest.raises(MessageTooBig, match=f"more than {MAX_FRAGMENTS} frames"):
        assembler.add(b"", False, True)
    assert assembler.add(b"next", True, True) == b"next"


def test_each_message_has_its_own_count() -> None:
    assembler = MessageAssembler(10)
    for _ in range(3):
        assert assembler.add(b"12345", False, True) is None
        assert assembler.add(b"67890", True, True) == b"1234567890"
