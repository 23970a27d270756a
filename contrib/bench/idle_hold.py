#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""idle_hold.py - hold N idle connections to a Redis server.

gopro-bench cannot speak RESP, so this is the Redis side of the
idle-connection measurement: open N TCP connections to 127.0.0.1:PORT
(spread over several loopback source addresses), send PING on each and
check the +PONG, then print "ready N" and keep them idle until stdin is
closed or a line is read.  The suite reads the server's RSS before and
while they are held.

With --tls CAFILE each connection is TLS (Redis's --tls-port), its
certificate checked against CAFILE (the name is not: the test certificate
is for localhost, the connection goes to an address).  Python's ssl sets
SSL_MODE_RELEASE_BUFFERS, so the holder's own memory stays small too.

usage: idle_hold.py [--tls CAFILE] PORT N [SOURCE,...]
"""
import resource
import socket
import ssl
import sys

USAGE = "usage: idle_hold.py [--tls CAFILE] PORT N [SOURCE,...]"


def tls_context(cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile)
    return ctx


def connect(port, source, ctx):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    if ctx is not None:
        s = ctx.wrap_socket(s)  # the handshake, within the timeout
    return s


def reply(s):
    """Read one line of reply."""
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        line += chunk
    return line


def main():
    args = sys.argv[1:]
    ctx = None
    if len(args) >= 2 and args[0] == "--tls":
        ctx = tls_context(args[1])
        args = args[2:]
    if len(args) < 2:
        sys.exit(USAGE)
    port, n = int(args[0]), int(args[1])
    sources = args[2].split(",") if len(args) > 2 else ["127.0.0.1"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    socks = [connect(port, sources[i % len(sources)], ctx) for i in range(n)]
    # Pipelined over the connections: send every PING, then read every PONG.
    for s in socks:
        s.sendall(b"PING\r\n")
    ok = bad = 0
    for s in socks:
        s.settimeout(10)
        r = reply(s)
        if r == b"+PONG\r\n":
            ok += 1
        elif bad == 0:
            bad += 1
            print("unexpected reply: %r" % r, file=sys.stderr)
    print("ready %d" % ok, flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    sys.exit(0 if ok == n else 1)


if __name__ == "__main__":
    main()
