#!/usr/bin/env python3
"""A hostile HTTP client for tests/hostile_http.rs, run inside the attacker's namespace.

Every mode is bounded in connections, bytes and time. Each prints flat JSON objects, one per
line, on stdout: {"event": "ready", ...} once the attack is in place, then
{"event": "done", ...} with what it saw.

  idle      HOST PORT COUNT SECONDS        COUNT connections that never send a byte
  slowloris HOST PORT COUNT SECONDS        COUNT connections sending a head, a line a second
  longpoll  HOST PORT COUNT SECONDS TARGET COUNT long polls, held SECONDS, then closed; then
                                           how long until one is accepted again
  pipeline  HOST PORT BYTES TARGET         BYTES of pipelined GETs on one connection whose
                                           small window makes the server's answers queue up

In idle and slowloris, a connection the server closes is opened again (at most 4 * COUNT
connections in all); "longest" is the longest any connection lasted before the server closed
it, "oldest_open" the age of the oldest still open at the end.
"""

import json
import select
import socket
import sys
import threading
import time

CONNECT_TIMEOUT = 2.0


def say(event, **fields):
    print(json.dumps(dict(event=event, **fields)), flush=True)


def connect(host, port):
    """A connected non-blocking socket, or None."""
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError:
        return None
    sock.setblocking(False)
    return sock


def gone(sock):
    """Whether the server closed or reset `sock` (reads and drops what came)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def hold(host, port, count, seconds, first_bytes, every_second):
    """Keeps `count` connections open for `seconds`, reopening those the server closes."""
    budget = 4 * count
    opened = {}  # socket -> time opened
    lines = 0

    def open_one():
        nonlocal budget
        if budget <= 0:
            return
        budget -= 1
        sock = connect(host, port)
        if sock is None:
            return
        if first_bytes:
            try:
                sock.send(first_bytes)
            except OSError:
                sock.close()
                return
        opened[sock] = time.monotonic()

    for _ in range(count):
        open_one()
    say("ready", opened=len(opened))
    start = time.monotonic()
    longest = 0.0
    closed = 0
    next_line = start + 1.0
    while time.monotonic() - start < seconds:
        readable, _, _ = select.select(list(opened), [], [], 0.2) if opened else ([], [], [])
        if not opened:
            time.sleep(0.2)
        now = time.monotonic()
        for sock in readable:
            if gone(sock):
                longest = max(longest, now - opened.pop(sock))
                closed += 1
                sock.close()
                open_one()
        if every_second and now >= next_line:
            next_line += 1.0
            lines += 1
            for sock in list(opened):
                try:
                    sock.send(b"X-Slow-%d: 1\r\n" % lines)
                except OSError:
                    pass
    now = time.monotonic()
    oldest = max((now - t for t in opened.values()), default=0.0)
    say("done", connects=4 * count - budget, closed=closed, longest=round(longest, 3),
        oldest_open=round(oldest, 3))
    for sock in opened:
        sock.close()


def status_of(data):
    """The status code of a response starting `data`, or None."""
    if not data.startswith(b"HTTP/1."):
        return None
    parts = data.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else None


def long_poll(host, port, target):
    sock = connect(host, port)
    if sock is None:
        return None
    request = "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (target, host, port)
    try:
        sock.send(request.encode())
    except OSError:
        sock.close()
        return None
    return sock


def answer_within(sock, seconds):
    """The status the server answered `sock` with within `seconds`, "closed", or "pending"."""
    deadline = time.monotonic() + seconds
    data = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        try:
            chunk = sock.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            return "closed"
        if not chunk:
            return "closed"
        data += chunk
        if b"\r\n" in data:
            return status_of(data) or "garbage"
    return "pending"


def longpolls(host, port, count, seconds, target):
    socks = [s for s in (long_poll(host, port, target) for _ in range(count)) if s]
    # Refusals are at once; what has no answer after a while is waiting.
    time.sleep(2.0)
    outcomes = {}
    for sock in socks:
        outcome = answer_within(sock, 0.05)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    say("ready", **{"status_" + k: v for k, v in outcomes.items()})
    time.sleep(seconds)
    for sock in socks:
        sock.close()
    closed_at = time.monotonic()
    # A new long poll, until one is not refused (bounded).
    accepted = None
    attempts = 0
    while time.monotonic() - closed_at < 5.0:
        attempts += 1
        sock = long_poll(host, port, target)
        outcome = answer_within(sock, 1.5) if sock else "closed"
        if sock:
            sock.close()
        if outcome == "pending":
            accepted = round(time.monotonic() - closed_at - 1.5, 3)
            break
        time.sleep(0.1)
    say("done", accepted_after=accepted, attempts=attempts)


def pipeline(host, port, total, target):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10.0)
    sock.connect((host, port))
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nX-Pad: %s\r\n\r\n"
               % (target, host, port, "p" * 900)).encode()
    payload = request * (total // len(request) + 1)
    sent = {"bytes": 0, "error": None}

    def send():
        try:
            view = memoryview(payload)
            while view:
                count = sock.send(view)
                sent["bytes"] += count
                view = view[count:]
            sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            sent["error"] = type(error).__name__

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    say("ready", requests=len(payload) // len(request))
    # Slow to read: the answers queue up in the server's kernel meanwhile.
    time.sleep(0.5)
    data = b""
    error = None
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except OSError as failure:
            error = type(failure).__name__
            break
        if not chunk:
            break
        data += chunk
    responses = 0
    last_close = False
    rest = data
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            break
        head = rest[:end].decode("latin-1").split("\r\n")
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        if len(rest) < end + 4 + length:
            break
        responses += 1
        last_close = fields.get("connection", "").lower() == "close"
        rest = rest[end + 4 + length:]
    sender.join(timeout=5.0)
    say("done", responses=responses, last_close=last_close, error=error,
        leftover=len(rest), sent=sent["bytes"], send_error=sent["error"])
    sock.close()


def main(argv):
    mode, host, port = argv[1], argv[2], int(argv[3])
    if mode == "idle":
        hold(host, port, int(argv[4]), float(argv[5]), b"", False)
    elif mode == "slowloris":
        first = ("GET /description.xml HTTP/1.1\r\nHost: %s:%d\r\n" % (host, port)).encode()
        hold(host, port, int(argv[4]), float(argv[5]), first, True)
    elif mode == "longpoll":
        longpolls(host, port, int(argv[4]), float(argv[5]), argv[6])
    elif mode == "pipeline":
        pipeline(host, port, int(argv[4]), argv[5])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv)
