#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""simple_client.py - the simplest GoPro client there is, as a tutorial
would write it: HEARTBEAT and MESSAGE only, one request, then read its one
reply (8-byte header, then exactly the body), no pipelining, no library.
The interop matrix (tests/interop/run.sh) runs it against every server
build so that such clients keep working.

    simple_client.py HOST PORT
"""
import socket
import struct
import sys

MAGIC, VERSION, HEARTBEAT, MESSAGE = 0x474F, 1, 0x00, 0x01


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed by the server")
        data += chunk
    return data


def request(sock, command, body):
    sock.sendall(struct.pack(">HBBI", MAGIC, VERSION, command, len(body)) + body)
    magic, version, reply_cmd, length = struct.unpack(">HBBI", read_exact(sock, 8))
    if magic != MAGIC or version != VERSION:
        raise ValueError("bad magic or version in the reply")
    return reply_cmd, read_exact(sock, length)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=5) as sock:
        cmd, body = request(sock, HEARTBEAT, b"tick")
        if (cmd, body) != (HEARTBEAT, b"tick"):
            sys.exit("heartbeat: got command %d body %r" % (cmd, body))
        for text in (b"hello", b"world"):
            cmd, body = request(sock, MESSAGE, text)
            if cmd != MESSAGE or not body.endswith(text):
                sys.exit("message: got command %d body %r" % (cmd, body))
    print("simple client ok")


if __name__ == "__main__":
    main()
