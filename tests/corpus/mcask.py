#!/usr/bin/env python3
"""Sends raw requests to a memcached port and prints what comes back.

    mcask.py PORT REQUEST...          ASCII protocol: one request at a time,
                                      Python escapes allowed (\\r, \\n, \\x00);
                                      prints each answer's lines, `<closed>`
                                      when the server closed the connection
    mcask.py --sasl PORT USER PASS    binary protocol SASL PLAIN
                                      authentication: prints the status
                                      (0 success, 32 authentication error)
"""
import socket
import struct
import sys
import time


def connect(port: int) -> socket.socket:
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"mcask: cannot connect to port {port}")


def ascii_requests(port: int, requests: list) -> None:
    s = connect(port)
    for req in requests:
        s.sendall(req.encode().decode("unicode_escape").encode("latin-1"))
        # An answer ends with END, a line of a one-line reply, or silence.
        data = b""
        s.settimeout(2)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    data += b"<closed>\r\n"
                    break
                data += chunk
                if data.endswith(b"END\r\n") or (data.endswith(b"\r\n") and not data.startswith(b"VALUE")
                                                 and b"get" not in req.encode()[:3]):
                    break
                s.settimeout(0.3)
        except socket.timeout:
            pass
        except ConnectionResetError:
            data += b"<closed>\r\n"
        for line in data.decode("latin-1").split("\r\n"):
            if line:
                print(line)
        if data.endswith(b"<closed>\r\n"):
            return


def sasl_auth(port: int, user: str, password: str) -> None:
    s = connect(port)
    key, value = b"PLAIN", b"\0" + user.encode() + b"\0" + password.encode()
    header = struct.pack(">BBHBBHIIQ", 0x80, 0x21, len(key), 0, 0, 0, len(key) + len(value), 1, 0)
    s.sendall(header + key + value)
    reply = b""
    while len(reply) < 24:
        chunk = s.recv(24 - len(reply))
        if not chunk:
            raise SystemExit("mcask: connection closed during SASL authentication")
        reply += chunk
    magic, _op, _kl, _el, _dt, status, _bl, _opaque, _cas = struct.unpack(">BBHBBHIIQ", reply)
    if magic != 0x81:
        raise SystemExit(f"mcask: not a binary protocol response (magic {magic:#x})")
    print(status)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--sasl":
        sasl_auth(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 3:
        ascii_requests(int(sys.argv[1]), sys.argv[2:])
    else:
        raise SystemExit(__doc__)
