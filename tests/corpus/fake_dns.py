#!/usr/bin/env python3
"""A tiny DNS server over UDP for the c-ares corpus test.

Answers every A query with 10.0.0.1. For a name that starts with
`empty-first`, it first sends an empty (0-byte) datagram and the answer
50 ms later: c-ares before the fix for CVE-2023-32067 takes the empty
datagram for a closed connection and fails the query.

    fake_dns.py PORT_FILE      binds 127.0.0.1:0, writes the port to PORT_FILE
"""
import socket
import struct
import sys
import os
import threading


def answer(query: bytes) -> bytes:
    qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
    # The question: labels up to the zero byte, then type and class.
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    header = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton("10.0.0.1")
    return header + question + record


def qname(query: bytes) -> str:
    labels, i = [], 12
    while query[i] != 0:
        labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
        i += query[i] + 1
    return ".".join(labels)


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(sock.getsockname()[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        query, peer = sock.recvfrom(4096)
        if len(query) < 17:
            continue
        reply = answer(query)
        if qname(query).startswith("empty-first"):
            sock.sendto(b"", peer)
            threading.Timer(0.05, sock.sendto, (reply, peer)).start()
        else:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
