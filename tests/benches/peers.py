#!/usr/bin/env python3
"""Probes for tests/benches/peers.sh, run inside the namespaces that script makes; every socket
is bound to an explicit address (and, for multicast, to an interface), every wait is bounded.

    peers.py ssdp-all --address A --subject S [--seconds 4]
        one M-SEARCH ssdp:all (MX 1) from A; JSON: replies from S, first and last in ms
    peers.py locate --address A --subject S
        the LOCATION S answers upnp:rootdevice with
    peers.py react --address A --iface IF --device URL --sim DIR --journal FILE --api URL
                   --xenplug BIN [--trials 30]
        changes to a sim domain file and what they lead to, in ms: the GENA event of the
        Domain's State, ssdp:alive of a new domain, the tracker's journal line, a waiting
        GET /api/events answer and a `console watch` line after that journal line
"""

import argparse
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

GROUP = "239.255.255.250"
SSDP_PORT = 1900


def search(address, st, mx=1):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    sock.bind((address, 0))
    message = (
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
        f"MX: {mx}\r\nST: {st}\r\n\r\n"
    ).encode()
    sock.sendto(message, (GROUP, SSDP_PORT))
    return sock, time.monotonic()


def headers_of(datagram):
    fields = {}
    for line in datagram.decode("utf-8", "replace").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().upper()] = value.strip()
    return fields


def ssdp_all(args):
    sock, sent = search(args.address, "ssdp:all")
    deadline = sent + args.seconds
    times = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            _, (source, _) = sock.recvfrom(4096)
        except socket.timeout:
            break
        if source == args.subject:
            times.append(time.monotonic() - sent)
    result = {"count": len(times)}
    if times:
        result["first_ms"] = round(times[0] * 1000, 1)
        result["last_ms"] = round(times[-1] * 1000, 1)
    print(json.dumps(result))


def locate(args):
    for _ in range(5):
        sock, sent = search(args.address, "upnp:rootdevice")
        sock.settimeout(2.5)
        try:
            while True:
                datagram, (source, _) = sock.recvfrom(4096)
                if source == args.subject:
                    print(headers_of(datagram).get("LOCATION", ""))
                    return
        except socket.timeout:
            continue
    sys.exit("peers.py: %s never answered upnp:rootdevice" % args.subject)


class Recorder:
    """Timestamped things seen, and a way to wait for one."""

    def __init__(self):
        self.items = []
        self.changed = threading.Condition()

    def add(self, item):
        with self.changed:
            self.items.append((time.monotonic(), item))
            self.changed.notify_all()

    def wait(self, since, match, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for at, item in self.items:
                    if at >= since and match(item):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)


def serve_notifies(address, recorder):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_NOTIFY(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            recorder.add(body.decode("utf-8", "replace"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def subscribe(device, path, callback):
    host, _, port = device.partition("//")[2].partition(":")
    connection = http.client.HTTPConnection(host, int(port.strip("/")), timeout=5)
    connection.request(
        "SUBSCRIBE",
        path,
        headers={"CALLBACK": f"<{callback}>", "NT": "upnp:event", "TIMEOUT": "Second-600"},
    )
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit("peers.py: SUBSCRIBE %s answered %d" % (path, response.status))


def listen_ssdp(iface, address, recorder):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind(("", SSDP_PORT))
    membership = socket.inet_aton(GROUP) + socket.inet_aton(address)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)

    def run():
        while True:
            datagram, _ = sock.recvfrom(4096)
            if datagram.startswith(b"NOTIFY"):
                recorder.add(headers_of(datagram))

    threading.Thread(target=run, daemon=True).start()


def follow_journal(path, recorder):
    def run():
        offset = os.path.getsize(path)
        pending = ""
        while True:
            with open(path) as journal:
                journal.seek(offset)
                text = journal.read()
            if text:
                offset += len(text.encode())
                pending += text
                *lines, pending = pending.split("\n")
                for line in lines:
                    recorder.add(line)
            time.sleep(0.0005)

    threading.Thread(target=run, daemon=True).start()


def follow_watch(xenplug, api, recorder):
    watch = subprocess.Popen(
        [xenplug, "console", "watch", "--tracker", api],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def run():
        for line in watch.stdout:
            recorder.add(line.rstrip("\n"))

    threading.Thread(target=run, daemon=True).start()
    return watch


def get_json(api, target, timeout):
    host, _, port = api.partition("//")[2].partition(":")
    connection = http.client.HTTPConnection(host, int(port.strip("/")), timeout=timeout)
    connection.request("GET", target)
    response = connection.getresponse()
    return json.loads(response.read() or b"{}")


def write_atomic(path, text):
    temporary = path + ".bench"
    with open(temporary, "w") as out:
        out.write(text)
    os.rename(temporary, path)


def percentiles(values):
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {
        "n": len(ordered),
        "p50": round(pick(0.5), 2),
        "p99": round(pick(0.99), 2),
    }


def react(args):
    domain_path = os.path.join(args.sim, "vm1.domain")
    base = open(domain_path).read()
    vm = next(line[5:] for line in base.splitlines() if line.startswith("uuid="))
    notifies, alives, journal, watch_lines, polls = (Recorder() for _ in range(5))
    port = serve_notifies(args.address, notifies)
    subscribe(args.device, f"/event/domain/{vm}", f"http://{args.address}:{port}/")
    listen_ssdp(args.iface, args.address, alives)
    follow_journal(args.journal, journal)
    last_seq = get_json(args.api, "/api/tree", 5).get("last_seq", 0)
    watch = follow_watch(args.xenplug, args.api, watch_lines)
    time.sleep(1.5)  # the watch's first long poll is waiting

    found = {key: [] for key in ("gena", "journal", "long_poll", "watch", "alive", "added")}
    missed = 0

    def long_poll(since):
        def run():
            try:
                page = get_json(args.api, f"/api/events?since={since}", 25)
                polls.add(page)
            except OSError:
                pass

        threading.Thread(target=run, daemon=True).start()

    for trial in range(args.trials):
        state = "paused" if trial % 2 == 0 else "running"
        text = "".join(
            ("state=%s\n" % state) if line.startswith("state=") else line + "\n"
            for line in base.splitlines()
        )
        long_poll(last_seq)
        time.sleep(0.1)  # the long poll is waiting at the tracker
        started = time.monotonic()
        write_atomic(domain_path, text)
        gena = notifies.wait(started, lambda body: f">{state}<" in body)
        needle = f"to={state}"
        logged = journal.wait(
            started, lambda line: "vm-state-changed" in line and vm in line and needle in line
        )
        answered = polls.wait(started, lambda page: bool(page.get("events")))
        printed = watch_lines.wait(
            started, lambda line: "vm-state-changed" in line and vm in line and needle in line
        )
        if None in (gena, logged, answered, printed):
            missed += 1
        else:
            found["gena"].append((gena - started) * 1000)
            found["journal"].append((logged - started) * 1000)
            found["long_poll"].append(max(0.0, answered - logged) * 1000)
            found["watch"].append(max(0.0, printed - logged) * 1000)
        page = [item for at, item in polls.items if at >= started]
        if page:
            last_seq = max(last_seq, page[-1].get("last_seq", last_seq))
        time.sleep(0.2)
    write_atomic(domain_path, base)

    for trial in range(args.trials):
        new = str(uuid.UUID(int=0xBE9C40000000400080000000000000 + trial))
        path = os.path.join(args.sim, f"bench{trial}.domain")
        started = time.monotonic()
        write_atomic(
            path,
            f"uuid={new}\nname=bench{trial}\nstate=running\nmemory_kib=524288\nvcpus=1\n",
        )
        seen = {item.get("USN", "") for _, item in alives.items}
        alive = alives.wait(
            started,
            lambda item: item.get("NTS") == "ssdp:alive"
            and item.get("NT", "").startswith("urn:xenplug-org:device:Domain")
            and item.get("USN", "") not in seen,
        )
        added = journal.wait(started, lambda line: "vm-added" in line and new in line)
        if None in (alive, added):
            missed += 1
        else:
            found["alive"].append((alive - started) * 1000)
            found["added"].append((added - started) * 1000)
        os.remove(path)
        journal.wait(started, lambda line: new in line and "vm-removed" in line, timeout=3)
        time.sleep(0.2)
    watch.terminate()
    result = {key: percentiles(values) for key, values in found.items()}
    result["missed"] = missed
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("ssdp-all")
    probe.add_argument("--address", required=True)
    probe.add_argument("--subject", required=True)
    probe.add_argument("--seconds", type=float, default=4.0)
    find = commands.add_parser("locate")
    find.add_argument("--address", required=True)
    find.add_argument("--subject", required=True)
    changes = commands.add_parser("react")
    for name in ("--address", "--iface", "--device", "--sim", "--journal", "--api", "--xenplug"):
        changes.add_argument(name, required=True)
    changes.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    {"ssdp-all": ssdp_all, "locate": locate, "react": react}[args.command](args)


if __name__ == "__main__":
    main()
