#!/usr/bin/env python3
"""A syslog datagram socket for log tests: binds SOCKET, appends each
datagram as one line to LOG. Usage: syslog-listener.py SOCKET LOG

SIGTERM ends it only after the datagrams already queued on the socket
are written, so a test may stop it right after its last log call."""
import select
import signal
import socket
import sys

sock_path, log_path = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
# The handler does nothing: the signal only wakes select() through wake_r.
wake_r, wake_w = socket.socketpair()
wake_w.setblocking(False)
signal.set_wakeup_fd(wake_w.fileno())
signal.signal(signal.SIGTERM, lambda *_: None)


def write(log, data):
    log.write(data.decode("utf-8", "replace").replace("\n", "\\n") + "\n")
    log.flush()


with open(log_path, "a", encoding="utf-8") as log:
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if sock in ready:
            write(log, sock.recv(65536))
        if wake_r in ready:
            sock.setblocking(False)
            while True:
                try:
                    write(log, sock.recv(65536))
                except BlockingIOError:
                    sys.exit(0)
