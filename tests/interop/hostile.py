#!/usr/bin/python3
"""Hostile and well-behaved UPnP peers for tests/hostile_upnp.rs and tests/benches/hostile.sh.

Standard library only. It must run inside a network namespace the test made (`ip netns exec NS
/usr/bin/python3 hostile.py ...`), and sends only to the addresses it is given, from the
addresses it is given. Every command is bounded in count and in time.

Output: one flat JSON object per line on stdout, each with a "kind"; diagnostics on stderr.

Commands:
  gena-flood   COUNT SUBSCRIBEs with a long TIMEOUT from one address (callback to itself)
  subscribe    one SUBSCRIBE with a callback served here; waits for the initial event
  ssdp-flood   M-SEARCHes at a fixed rate for a fixed time, from one or many source addresses
               (each must be an address of this namespace), counting the answers
  ssdp-probe   a well-behaved control point: a few M-SEARCHes on one interface, counting the
               answers each gets
"""

import argparse
import http.client
import http.server
import ipaddress
import json
import resource
import selectors
import socket
import sys
import threading
import time
import urllib.parse

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def log(msg):
    print("hostile: " + msg, file=sys.stderr, flush=True)


def subscribe(url, bind, callback, timeout_header, deadline):
    """One SUBSCRIBE from `bind` to `url`: (status, headers)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=max(0.5, deadline - time.monotonic()),
        source_address=(bind, 0))
    try:
        connection.request("SUBSCRIBE", parts.path, headers={
            "HOST": parts.netloc,
            "CALLBACK": "<%s>" % callback,
            "NT": "upnp:event",
            "TIMEOUT": timeout_header,
        })
        response = connection.getresponse()
        response.read()
        return response.status, {k.upper(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def cmd_gena_flood(args):
    deadline = time.monotonic() + args.timeout
    callback = "http://%s:%d/cb" % (args.bind, args.callback_port)
    for n in range(args.count):
        if time.monotonic() >= deadline:
            emit({"kind": "timeout", "sent": n})
            return 3
        status, headers = subscribe(args.url, args.bind, callback, args.timeout_header, deadline)
        emit({"kind": "subscribed", "n": n, "status": status,
              "sid": headers.get("SID", ""), "timeout": headers.get("TIMEOUT", "")})
    return 0


def cmd_subscribe(args):
    deadline = time.monotonic() + args.timeout
    events = []
    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_NOTIFY(self):  # noqa: N802 (the HTTP method's name)
            length = int(self.headers.get("Content-Length", "0") or "0")
            body = self.rfile.read(min(length, 65536)).decode("utf-8", "replace")
            events.append({"kind": "event", "sid": self.headers.get("SID", ""),
                           "seq": self.headers.get("SEQ", ""), "body": body})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrived.set()

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer((args.bind, 0), Handler)
    server.timeout = 0.2
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        callback = "http://%s:%d/cb" % (args.bind, server.server_address[1])
        status, headers = subscribe(args.url, args.bind, callback, args.timeout_header, deadline)
        emit({"kind": "subscribed", "status": status, "sid": headers.get("SID", ""),
              "timeout": headers.get("TIMEOUT", "")})
        if status != 200:
            return 4
        arrived.wait(max(0.0, deadline - time.monotonic()))
        for event in events:
            emit(event)
        return 0 if events else 3
    finally:
        server.shutdown()
        server.server_close()


def search_datagram(st, host, mx):
    lines = ["M-SEARCH * HTTP/1.1", "HOST: %s" % host, 'MAN: "ssdp:discover"']
    if mx is not None:
        lines.append("MX: %d" % mx)
    lines.append("ST: %s" % st)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def source_addresses(args):
    if args.sources_from is None:
        return [args.source]
    first = ipaddress.IPv4Address(args.sources_from)
    return [str(first + n) for n in range(args.sources)]


def cmd_ssdp_flood(args):
    """Sends args.rate searches a second for args.seconds from the source addresses in turn,
    alternating a unicast HOST (answered at once) and the multicast HOST with MX 1, all to
    args.target:1900; then keeps reading answers for args.drain seconds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(source_addresses(args)) + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(wanted, soft), hard), hard))
    selector = selectors.DefaultSelector()
    sockets = []
    for address in source_addresses(args):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((address, 0))
        selector.register(sock, selectors.EVENT_READ)
        sockets.append(sock)
    datagrams = [search_datagram(args.st, "%s:%d" % (args.target, SSDP_PORT), None),
                 search_datagram(args.st, "%s:%d" % (SSDP_GROUP, SSDP_PORT), 1)]
    sent = {"datagrams": 0, "bytes": 0, "dropped": 0}
    received = {"datagrams": 0, "bytes": 0}

    def drain(wait):
        for key, _ in selector.select(wait):
            while True:
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    break
                received["datagrams"] += 1
                received["bytes"] += len(data)

    start = time.monotonic()
    total = int(args.rate * args.seconds)
    for k in range(total):
        due = start + k / args.rate
        while True:
            now = time.monotonic()
            if now >= due:
                break
            drain(min(due - now, 0.01))
        if now - start > args.seconds + 2:
            log("flooder fell behind; stopping")
            break
        data = datagrams[k % 2]
        try:
            sockets[k % len(sockets)].sendto(data, (args.target, SSDP_PORT))
            sent["datagrams"] += 1
            sent["bytes"] += len(data)
        except (BlockingIOError, OSError):
            sent["dropped"] += 1
    flooded = time.monotonic() - start
    end = time.monotonic() + args.drain
    while time.monotonic() < end:
        drain(0.05)
    emit({"kind": "flood", "sources": len(sockets), "st": args.st, "seconds": round(flooded, 3),
          "sent_datagrams": sent["datagrams"], "sent_bytes": sent["bytes"],
          "send_errors": sent["dropped"], "received_datagrams": received["datagrams"],
          "received_bytes": received["bytes"]})
    for sock in sockets:
        sock.close()
    return 0


def cmd_ssdp_probe(args):
    """Searches args.st from args.bind (multicast on that interface, MX 1) at each offset of
    args.at (seconds from start), twice 100 ms apart as UDA 1.1 section 1.3.2 suggests, and
    reports the answers that arrived before the next search."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.bind))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    sock.settimeout(0.05)
    datagram = search_datagram(args.st, "%s:%d" % (SSDP_GROUP, SSDP_PORT), 1)
    offsets = [float(at) for at in args.at.split(",")]
    start = time.monotonic()
    for index, offset in enumerate(offsets):
        while time.monotonic() < start + offset:
            time.sleep(0.01)
        for _ in range(2):
            sock.sendto(datagram, (SSDP_GROUP, SSDP_PORT))
            time.sleep(0.1)
        until = start + (offsets[index + 1] if index + 1 < len(offsets) else offset + args.listen)
        answers = []
        while time.monotonic() < until:
            try:
                data, peer = sock.recvfrom(4096)
            except socket.timeout:
                continue
            if peer[0] != args.device:
                continue
            fields = {}
            for line in data.decode("utf-8", "replace").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().upper()] = value.strip()
            answers.append(fields.get("ST", ""))
        emit({"kind": "probe", "at": offset, "answers": len(answers),
              "root": answers.count("upnp:rootdevice"), "targets": len(set(answers))})
    sock.close()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    flood = commands.add_parser("gena-flood")
    flood.add_argument("--url", required=True, help="event URL")
    flood.add_argument("--bind", required=True, help="address to subscribe from")
    flood.add_argument("--callback-port", type=int, default=9)
    flood.add_argument("--count", type=int, default=64)
    flood.add_argument("--timeout-header", default="Second-86400")
    flood.add_argument("--timeout", type=float, default=20.0)

    sub = commands.add_parser("subscribe")
    sub.add_argument("--url", required=True, help="event URL")
    sub.add_argument("--bind", required=True, help="address to subscribe from and listen on")
    sub.add_argument("--timeout-header", default="Second-86400")
    sub.add_argument("--timeout", type=float, default=10.0)

    ssdp = commands.add_parser("ssdp-flood")
    ssdp.add_argument("--target", required=True, help="the device's address")
    ssdp.add_argument("--st", default="ssdp:all")
    ssdp.add_argument("--source", help="the one source address")
    ssdp.add_argument("--sources-from", help="first of --sources consecutive source addresses")
    ssdp.add_argument("--sources", type=int, default=1)
    ssdp.add_argument("--rate", type=float, default=2000.0, help="searches a second")
    ssdp.add_argument("--seconds", type=float, default=5.0)
    ssdp.add_argument("--drain", type=float, default=3.5)

    probe = commands.add_parser("ssdp-probe")
    probe.add_argument("--bind", required=True, help="this control point's address")
    probe.add_argument("--device", required=True, help="the device's address")
    probe.add_argument("--st", default="ssdp:all")
    probe.add_argument("--at", default="0", help="comma-separated offsets in seconds")
    probe.add_argument("--listen", type=float, default=2.0)

    args = parser.parse_args()
    if args.command == "ssdp-flood":
        if (args.source is None) == (args.sources_from is None):
            parser.error("give --source or --sources-from")
        if not 0 < args.rate <= 20000 or not 0 < args.seconds <= 30 or args.sources > 4096:
            parser.error("the flood is bounded: rate <= 20000/s, seconds <= 30, sources <= 4096")
    handlers = {"gena-flood": cmd_gena_flood, "subscribe": cmd_subscribe,
                "ssdp-flood": cmd_ssdp_flood, "ssdp-probe": cmd_ssdp_probe}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
