#!/usr/bin/env python3
"""HTTP helpers for the nginx corpus test (tests/e2e/from_debian_source_nginx.sh).

  http_probe.py upstream PORT_FILE COUNT_FILE
      A stand-in upstream: accepts connections on a free port (written to
      PORT_FILE), counts them in COUNT_FILE and closes each at once.
  http_probe.py load URL STOP_FILE STATS_FILE [THREADS]
      GETs URL over and over from THREADS connections (default 4) until
      STOP_FILE exists; every answer must be 200 with body "ok\\n". A kept-alive
      connection the server closed before answering (a worker leaving at a
      reload) is retried once on a new one, as HTTP clients do, and counted.
      Keeps "ok N failed M reconnects R" in STATS_FILE, the final count last.
  http_probe.py big URL BYTES
      One GET with a header of BYTES bytes; prints the status ("none" if the
      connection closed without an answer).
"""
import http.client
import os
import socket
import sys
import threading
import time
import urllib.parse


def upstream(port_file, count_file):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    count = 0
    with open(count_file, "w") as f:
        f.write("0\n")
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{s.getsockname()[1]}\n")
    os.rename(port_file + ".tmp", port_file)
    while True:
        c, _ = s.accept()
        count += 1
        with open(count_file + ".tmp", "w") as f:
            f.write(f"{count}\n")
        os.rename(count_file + ".tmp", count_file)
        c.close()


def load(url, stop_file, stats_file, threads=4):
    u = urllib.parse.urlsplit(url)
    counts = {"ok": 0, "failed": 0, "reconnects": 0}
    lock = threading.Lock()
    closed = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def get(conn):
        conn.request("GET", u.path or "/")
        r = conn.getresponse()
        return r.status == 200 and r.read() == b"ok\n"

    def worker():
        conn = None
        while not os.path.exists(stop_file):
            good = False
            for attempt in range(2):
                reused = conn is not None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                    good = get(conn)
                    break
                except closed:
                    conn = None
                    if not reused or attempt:
                        break
                    with lock:
                        counts["reconnects"] += 1
                except (OSError, http.client.HTTPException):
                    conn = None
                    break
            with lock:
                counts["ok" if good else "failed"] += 1
            time.sleep(0.002)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()

    def write():
        with lock:
            line = f"ok {counts['ok']} failed {counts['failed']} reconnects {counts['reconnects']}\n"
        with open(stats_file + ".tmp", "w") as f:
            f.write(line)
        os.rename(stats_file + ".tmp", stats_file)

    while any(t.is_alive() for t in ts):
        write()
        time.sleep(0.2)
    write()


def big(url, size):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.putrequest("GET", u.path)
        conn.putheader("X-Big", "a" * size)
        conn.endheaders()
        print(conn.getresponse().status)
    except (OSError, http.client.HTTPException):
        print("none")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "upstream":
        upstream(sys.argv[2], sys.argv[3])
    elif cmd == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 4)
    elif cmd == "big":
        big(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
