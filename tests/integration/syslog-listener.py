#!/usr/bin/env python3
"""A syslog datagram socket for log tests: binds SOCKET, appends each
datagram as one line to LOG. Usage: syslog-listener.py SOCKET LOG"""
import socket
import sys

sock_path, log_path = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
with open(log_path, "a", encoding="utf-8") as log:
    while True:
        data = sock.recv(65536)
        log.write(data.decode("utf-8", "replace").replace("\n", "\\n") + "\n")
        log.flush()
