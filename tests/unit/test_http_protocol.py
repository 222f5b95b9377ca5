"""The gateway's responses go out in one write each, and nothing written is lost when it closes."""
from __future__ import annotations

import asyncio

from services.ingest.http_protocol import CoalescingTransport


class Socket:
    """Records what reaches the socket, write by write."""

    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 8000) if name == "sockname" else None


async def test_a_head_and_body_written_in_one_turn_of_the_loop_reach_the_socket_as_one_write():
    socket = Socket()
    transport = CoalescingTransport(socket)
    head = bytearray(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    transport.write(head)
    head[:4] = b"XXXX"  # a caller reusing its buffer does not change what was written
    transport.write(b"{}")
    assert socket.writes == []
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert socket.writes[1:] == [b"next"]


async def test_closing_sends_what_was_written_first():
    socket = Socket()
    transport = CoalescingTransport(socket)
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    assert socket.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and socket.closed
    await asyncio.sleep(0)  # the turn's flush finds nothing more to send, and does not write to a closed socket
    assert len(socket.writes) == 1


async def test_writes_for_a_connection_the_client_dropped_are_let_go():
    socket = Socket()
    transport = CoalescingTransport(socket)
    transport.write(b"late")
    socket.closed = True
    await asyncio.sleep(0)
    assert socket.writes == []


def test_everything_else_is_the_sockets():
    transport = CoalescingTransport(Socket())
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert transport.is_closing() is False
