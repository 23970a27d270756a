#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""idle_hold.py - hold N idle connections to a Redis server.

gopro-bench cannot speak RESP, so this is the Redis side of the
idle-connection measurement: open N TCP connections to 127.0.0.1:PORT
(spread over several loopback source addresses), send PING on each and
check the +PONG, then print "ready N" and keep them idle until stdin is
closed or a line is read.  The suite reads the server's RSS before and
while they are held.

usage: idle_hold.py PORT N [SOURCE,...]
"""
import resource
import socket
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: idle_hold.py PORT N [SOURCE,...]")
    port, n = int(sys.argv[1]), int(sys.argv[2])
    sources = sys.argv[3].split(",") if len(sys.argv) > 3 else ["127.0.0.1"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((sources[i % len(sources)], 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    # Pipelined over the connections: send every PING, then read every PONG.
    for s in socks:
        s.sendall(b"PING\r\n")
    ok = 0
    for s in socks:
        s.settimeout(10)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
        if reply == b"+PONG\r\n":
            ok += 1
        elif ok == 0:
            print("unexpected reply: %r" % reply, file=sys.stderr)
    print("ready %d" % ok, flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    sys.exit(0 if ok == n else 1)


if __name__ == "__main__":
    main()
