"""The web server's event loop accepts a burst of new connections a batch at a time."""

import asyncio
import socket

from platform_site.serving import ACCEPTS_PER_TURN, EventLoop


def waiting_to_be_accepted(port: int) -> int:
    """The listen queue of a port, as the kernel reports it (/proc/net/tcp: rx_queue of the LISTEN row)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def one_turn(loop: asyncio.AbstractEventLoop) -> None:
    """Polls for I/O once and runs what it made ready (asyncio's documented stop-before-run behaviour)."""
    loop.stop()
    loop.run_forever()


def test_a_burst_of_connections_is_accepted_64_at_a_time_not_one_per_turn_nor_all_at_once():
    # Given the loop serving a listening socket, and 100 clients whose connections the kernel has completed
    loop = EventLoop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
    port = listener.getsockname()[1]
    server = loop.run_until_complete(loop.create_server(asyncio.Protocol, sock=listener, backlog=2048))
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    try:
        assert waiting_to_be_accepted(port) == 100

        # When the loop goes round once, then again
        one_turn(loop)
        after_one = waiting_to_be_accepted(port)
        one_turn(loop)

        # Then the first turn took 64 of them (uvloop takes one; asyncio alone, all: one worker process of
        # several would take the whole burst), and the next turn the rest
        assert (ACCEPTS_PER_TURN, after_one, waiting_to_be_accepted(port)) == (64, 36, 0)
    finally:
        for client in clients:
            client.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
