#!/usr/bin/env python3
"""A hostile host on a test LAN: floods a tracker with SSDP NOTIFYs, standard library only.

Run only inside a network namespace a test made (`ip netns exec NS ssdp_flood.py ...`): every
datagram leaves from --addr through --iface, to the SSDP group or to --to, and nowhere else.
Every run is bounded: --count datagrams at most, spread over --seconds, and the whole run ends
after --seconds + --linger seconds at most.

Modes:
  uuids    --count NOTIFY alive, each for a fresh UUID (uuid:<--prefix>-...-<n>), max-age
           --max-age, LOCATION http://ADDR:--port/d-<n>.xml (a port where nothing listens:
           each fetch is refused at once).
  flap     --count NOTIFY alive for one UUID (--udn) whose CONFIGID.UPNP.ORG alternates 1 and
           2, LOCATION on the silent server below.
  silent   --count devices (fresh UUIDs) whose LOCATIONs are on a TCP server of this process
           that accepts connections and never answers; each device is announced once.
  byebye   --count ssdp:byebye for --udn (NT upnp:rootdevice) with the IPv4 source address
           --spoof (a raw socket: the address of the host the byebye pretends to come from).

`flap` and `silent` run the silent server (on --silent-port) for the whole run: it holds
every connection open without reading. One JSON line per event on stdout: started, done
(datagrams sent, connections the silent server accepted, seconds).
"""

import argparse
import json
import random
import socket
import struct
import sys
import threading
import time

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900


def emit(kind, **fields):
    fields["kind"] = kind
    print(json.dumps(fields), flush=True)


def alive(udn, nt, location, max_age, config_id=None, boot_id=1):
    usn = udn if nt == udn else f"{udn}::{nt}"
    lines = [
        "NOTIFY * HTTP/1.1",
        f"HOST: {SSDP_GROUP}:{SSDP_PORT}",
        f"CACHE-CONTROL: max-age={max_age}",
        f"LOCATION: {location}",
        f"NT: {nt}",
        "NTS: ssdp:alive",
        "SERVER: Linux/6.1 UPnP/1.1 hostile/0.1",
        f"USN: {usn}",
        f"BOOTID.UPNP.ORG: {boot_id}",
    ]
    if config_id is not None:
        lines.append(f"CONFIGID.UPNP.ORG: {config_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def byebye(udn):
    lines = [
        "NOTIFY * HTTP/1.1",
        f"HOST: {SSDP_GROUP}:{SSDP_PORT}",
        "NT: upnp:rootdevice",
        "NTS: ssdp:byebye",
        f"USN: {udn}::upnp:rootdevice",
        "BOOTID.UPNP.ORG: 1",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def fresh_udn(prefix, n):
    return f"uuid:{prefix}-0000-4000-8000-{n:012x}"


class SilentServer:
    """Accepts TCP connections on (addr, port) and never answers; counts them."""

    def __init__(self, addr, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.held = []
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def udp_sender(addr, iface):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind((addr, 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    return sock


def spoofed(source, payload):
    """IPv4 + UDP headers around payload, source address `source`, to the SSDP group.

    raw(7): with IP_HDRINCL the kernel fills in the IP checksum and total length; a UDP
    checksum of 0 means none (RFC 768).
    """
    udp = struct.pack("!HHHH", SSDP_PORT, SSDP_PORT, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        random.randint(1, 0xFFFF),
        0,
        2,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(source),
        socket.inet_aton(SSDP_GROUP),
    )
    return ip + udp


def paced(count, seconds):
    """Yields 0..count-1, spread evenly over `seconds`."""
    start = time.monotonic()
    for n in range(count):
        if seconds > 0:
            due = start + seconds * n / count
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["uuids", "flap", "silent", "byebye"])
    parser.add_argument("--addr", required=True, help="this host's IPv4 address on --iface")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=0.0, help="spread the sends over")
    parser.add_argument("--linger", type=float, default=0.0, help="keep serving afterwards")
    parser.add_argument("--max-age", type=int, default=86400)
    parser.add_argument("--prefix", default="a77ac000")
    parser.add_argument("--udn", help="flap, byebye: the device's UDN")
    parser.add_argument("--spoof", help="byebye: the source address to write")
    parser.add_argument("--port", type=int, default=9, help="uuids: LOCATION port")
    parser.add_argument("--silent-port", type=int, default=8099)
    args = parser.parse_args()
    if not 0 < args.count <= 200_000 or not 0 <= args.seconds <= 60 or not 0 <= args.linger <= 60:
        sys.exit("ssdp_flood: --count 1..200000, --seconds and --linger 0..60")

    server = None
    if args.mode in ("flap", "silent"):
        server = SilentServer(args.addr, args.silent_port)
    started = time.monotonic()
    emit("started", mode=args.mode, count=args.count)
    sent = 0
    if args.mode == "byebye":
        if not args.udn or not args.spoof:
            sys.exit("ssdp_flood byebye: --udn and --spoof are required")
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.addr))
        packet = spoofed(args.spoof, byebye(args.udn))
        for _ in paced(args.count, args.seconds):
            raw.sendto(packet, (SSDP_GROUP, 0))
            sent += 1
    else:
        sock = udp_sender(args.addr, args.iface)
        silent = f"http://{args.addr}:{args.silent_port}"
        for n in paced(args.count, args.seconds):
            if args.mode == "uuids":
                location = f"http://{args.addr}:{args.port}/d-{n}.xml"
                message = alive(fresh_udn(args.prefix, n), "upnp:rootdevice", location, args.max_age)
            elif args.mode == "flap":
                if not args.udn:
                    sys.exit("ssdp_flood flap: --udn is required")
                location = f"{silent}/never.xml"
                message = alive(args.udn, "upnp:rootdevice", location, args.max_age, 1 + n % 2)
            else:
                location = f"{silent}/silent-{n}.xml"
                message = alive(fresh_udn(args.prefix, n), "upnp:rootdevice", location, args.max_age)
            try:
                sock.sendto(message, (SSDP_GROUP, SSDP_PORT))
                sent += 1
            except BlockingIOError:
                pass
    if args.linger > 0:
        time.sleep(args.linger)
    accepted = server.accepted if server else 0
    if server:
        server.close()
    emit("done", sent=sent, accepted=accepted, seconds=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
