#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (committed; run again after
changing a seed). The messages are the byte fixtures of the unit tests in src/wire/*.rs and
the golden files in tests/fixtures/, laid out as each fuzz target reads its input. The newer
targets read their fixtures straight from the unit tests' string literals (`fixture`), so a
renamed or removed fixture stops this script instead of going stale."""

import pathlib
import re
import struct

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
SRC = HERE.parent.parent / "src"

RUST_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", "0": b"\0", "'": b"'", '"': b'"'}


def fixture(path, name):
    """The bytes of the Rust literal `static NAME: &[u8] = ...;` or `&str` in src/`path`: raw
    (`br#"..."#`, `r#"..."#`) or with escapes (`\\n`, `\\xHH`, `\\u{...}`, and a backslash
    at a line end skipping the line break and the next line's indentation)."""
    source = (SRC / path).read_text(encoding="utf-8")
    match = re.search(
        r"(?:static|const)\s+" + name + r"\s*:\s*&(?:\[u8\]|'static str|str)\s*=\s*(b?)(r#*)?\"",
        source,
    )
    if match is None:
        raise SystemExit(f"seeds.py: no fixture {name} in src/{path}")
    start = match.end()
    if match.group(2):
        end = source.index('"' + match.group(2)[1:], start)
        return source[start:end].encode("utf-8")
    out = bytearray()
    index = start
    while source[index] != '"':
        character = source[index]
        if character != "\\":
            out += character.encode("utf-8")
            index += 1
            continue
        kind = source[index + 1]
        if kind in RUST_ESCAPES:
            out += RUST_ESCAPES[kind]
            index += 2
        elif kind == "x":
            out.append(int(source[index + 2 : index + 4], 16))
            index += 4
        elif kind == "u":
            close = source.index("}", index)
            out += chr(int(source[index + 3 : close], 16)).encode("utf-8")
            index = close + 1
        elif kind == "\n":
            index += 2
            while source[index] in " \t\n\r":
                index += 1
        else:
            raise SystemExit(f"seeds.py: unknown escape \\{kind} in {name}")
    return bytes(out)


# src/wire/ssdp.rs tests
GSSDP_SEARCH = (
    b"M-SEARCH * HTTP/1.1\r\n"
    b"Host: 239.255.255.250:1900\r\n"
    b'Man: "ssdp:discover"\r\n'
    b"ST: urn:schemas-upnp-org:device:MediaRenderer:1\r\n"
    b"MX: 3\r\n"
    b"User-Agent: Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6\r\n"
    b"CPFN.UPNP.ORG: rygel-test\r\n"
    b"\r\n"
)
MINIUPNPD_NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b"CACHE-CONTROL: max-age=120\r\n"
    b"LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n"
    b"SERVER: OpenWRT/23.05 UPnP/1.1 MiniUPnPd/2.3.4\r\n"
    b"NT: urn:schemas-upnp-org:service:WANIPConnection:1\r\n"
    b"USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::urn:schemas-upnp-org:service:WANIPConnection:1\r\n"
    b"NTS: ssdp:alive\r\n"
    b'OPT: "http://schemas.upnp.org/upnp/1/0/"; ns=01\r\n'
    b"01-NLS: 1700000000\r\n"
    b"BOOTID.UPNP.ORG: 1700000000\r\n"
    b"CONFIGID.UPNP.ORG: 1337\r\n"
    b"\r\n"
)
WINDOWS_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b'cache-control: no-cache="Ext", max-age = 900\r\n'
    b"date: Tue, 24 Nov 2026 00:00:00 GMT\r\n"
    b"ext:\r\n"
    b"location: http://192.168.1.20:2869/upnphost/udhisapi.dll?content=uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c\r\n"
    b"server: Microsoft-Windows/10.0 UPnP/1.0 UPnP-Device-Host/1.0\r\n"
    b"st: upnp:rootdevice\r\n"
    b"usn: uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c::upnp:rootdevice\r\n"
    b"content-length: 0\r\n"
    b"\r\n"
)
BYEBYE = (
    b"NOTIFY * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b"NT: upnp:rootdevice\r\n"
    b"NTS: ssdp:byebye\r\n"
    b"USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::upnp:rootdevice\r\n"
    b"BOOTID.UPNP.ORG: 7\r\n"
    b"CONFIGID.UPNP.ORG: 3\r\n"
    b"\r\n"
)
UPDATE = (
    b"NOTIFY * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b"LOCATION: http://10.0.0.2:49152/description.xml\r\n"
    b"NT: upnp:rootdevice\r\n"
    b"NTS: ssdp:update\r\n"
    b"USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::upnp:rootdevice\r\n"
    b"BOOTID.UPNP.ORG: 7\r\n"
    b"CONFIGID.UPNP.ORG: 3\r\n"
    b"NEXTBOOTID.UPNP.ORG: 8\r\n"
    b"SEARCHPORT.UPNP.ORG: 49200\r\n"
    b"\r\n"
)

# src/wire/http.rs tests
SOAP_POST = (
    b"POST /control/Hypervisor HTTP/1.1\r\n"
    b"Host: 192.168.1.10:49152\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
    b"User-Agent: Linux/6.1 UPnP/1.0 GUPnP/1.6.6 DLNADOC/1.50\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b'SOAPAction: "urn:xenplug-org:service:Hypervisor:1#GetHostInfo"\r\n'
    b"Accept-Encoding: gzip\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Content-Length: 299\r\n\r\n"
)
SUBSCRIBE = (
    b"SUBSCRIBE /event/Hypervisor HTTP/1.1\r\n"
    b"Host: 192.168.1.10:49152\r\n"
    b"CALLBACK: <http://192.168.1.20:8123/notify>\r\n"
    b"NT: upnp:event\r\n"
    b"TIMEOUT: Second-1800\r\n"
    b"User-Agent: async-upnp-client/0.38.0 DLNADOC/1.50 UPnP/2.0\r\n"
    b"Content-Length: 0\r\n\r\n"
)
CURL_GET = (
    b"GET /description.xml HTTP/1.1\r\n"
    b"Host: 127.0.0.1:49152\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"SERVER: Linux/6.1 UPnP/1.1 xenplug/0.1.0\r\n"
    b"SID: uuid:5d7c1b76-0b2e-4a59-9b4e-000000000001\r\n"
    b"TIMEOUT: Second-1800\r\n"
    b"Content-Length: 0\r\n\r\n"
)
CHUNKED = (
    b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
    b"Trailer: x\r\n\r\nNEXT"
)

# src/wire/soap.rs tests
GUPNP = (
    b'<?xml version="1.0"?>\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
    b'<u:Shutdown xmlns:u="urn:xenplug-org:service:DomainControl:1"><Mode>clean</Mode>'
    b"<Force>0</Force></u:Shutdown></s:Body></s:Envelope>"
)
ASYNC_UPNP = (
    b'<?xml version="1.0"?><s:Envelope s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/" '
    b'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<u:Rename xmlns:u="urn:xenplug-org:service:DomainControl:1">'
    b"<NewName>web &amp; db &lt;1&gt;</NewName></u:Rename></s:Body></s:Envelope>"
)
UNUSUAL = b"""<?xml version="1.0" encoding="utf-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Header><x:Trace xmlns:x="urn:example">1</x:Trace></SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <!-- a comment -->
    <m:Shutdown xmlns:m="urn:xenplug-org:service:DomainControl:1">
      <Mode><![CDATA[cl]]>e<!-- split -->an</Mode>
      <Force/>
    </m:Shutdown>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"""
DEFAULT_NS = (
    b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>'
    b'<Shutdown xmlns="urn:xenplug-org:service:DomainControl:1"><Mode>clean</Mode>'
    b"<Force>1</Force></Shutdown></Body></Envelope>"
)
SHUTDOWN_ACTION = b'"urn:xenplug-org:service:DomainControl:1#Shutdown"'
RENAME_ACTION = b"urn:xenplug-org:service:DomainControl:1#Rename"

# Control bytes of engine_ssdp: bits 0-1 interface (2, 5, unknown, 2), bits 2-3 source
# (in 192.168.10/24, in 10.20/16, outside, the group), bit 4 with an empty datagram a device
# change, bits 5-7 the clock step.
ENGINE_SEPARATOR = b"\0\0\0\0"


def search(st, host=b"239.255.255.250:1900", mx=b"1"):
    lines = [b"M-SEARCH * HTTP/1.1", b"HOST: " + host, b'MAN: "ssdp:discover"']
    if mx is not None:
        lines.append(b"MX: " + mx)
    lines += [b"ST: " + st, b"", b""]
    return b"\r\n".join(lines)


def engine(*records):
    return ENGINE_SEPARATOR.join(bytes([control]) + datagram for control, datagram in records)


def lines(*parts):
    """`parts` joined by line feeds: the header lines, then the body, of the newer targets."""
    return b"\n".join(parts)


# src/wire/description.rs tests; the base URL is the first line of a `description` input.
DESCRIPTION_RS = "wire/description.rs"
LOCATION = fixture(DESCRIPTION_RS, "LOCATION")
# src/wire/scpd.rs, src/wire/soap.rs, src/wire/gena.rs tests
SCPD_RS = "wire/scpd.rs"
SOAP_RS = "wire/soap.rs"
GENA_RS = "wire/gena.rs"
XMLRPC_RS = "wire/xmlrpc.rs"
HYPERVISOR_TYPE = b"urn:xenplug-org:service:Hypervisor:1"
DOMAIN_TYPE = b"urn:xenplug-org:service:DomainControl:1"
SID = b"uuid:5f3bf8a3-4c1e-4a9e-9a3f-2d7e0c1b9a10"
# src/repo/journal.rs and src/files.rs tests: a journal line, and escaped values as the
# HOSTILE strings are written.
EVENT_LINE = fixture("repo/journal.rs", "EVENT_LINE")
ESCAPED_RECORD = (
    b"# escaped\n"
    b"k0=\n"
    b"k1=\\x20\n"
    b"k2=a=b=c\n"
    b"k3=line\\nbreak\n"
    b"k4=carriage\\r\\nreturn\n"
    b"k5=nul\\x00byte\n"
    b"k6=\\\\n is not a newline\n"
    b"k7=\\u{85}next\\x20line\\u{2028}separator\n"
    b"k8=caf\xc3\xa9\\x20\xf0\x9f\x98\x80\n"
    b"name = web server\n"
)


SEEDS = {
    "ssdp": {
        "gssdp-search": GSSDP_SEARCH,
        "miniupnpd-notify": MINIUPNPD_NOTIFY,
        "windows-response": WINDOWS_RESPONSE,
        "byebye": BYEBYE,
        "update": UPDATE,
    },
    "http_request": {
        "soap-post": SOAP_POST + GUPNP,
        "subscribe": SUBSCRIBE,
        "curl-get": CURL_GET,
        "response": RESPONSE,
        "bare-lf-http10": b"GET /a?b HTTP/1.0\nHost: x\nConnection: keep-alive\n\n",
    },
    "http_chunked": {
        # limit (u16 LE), split (u16 LE), body
        "wikipedia": struct.pack("<HH", 4096, 9) + CHUNKED,
        "wikipedia-tight-limit": struct.pack("<HH", 23, 30) + CHUNKED,
        "bare-lf": struct.pack("<HH", 64, 2) + b"3\nabc\n0\n\n",
        "empty-body": struct.pack("<HH", 0, 1) + b"0\r\n\r\n",
    },
    "soap": {
        # first line SOAPACTION, rest body
        "gupnp-shutdown": SHUTDOWN_ACTION + b"\n" + GUPNP,
        "async-upnp-rename": RENAME_ACTION + b"\n" + ASYNC_UPNP,
        "unusual": SHUTDOWN_ACTION + b"\n" + UNUSUAL,
        "default-ns-no-header": b"\n" + DEFAULT_NS,
        "response-fixture": b"\n" + (FIXTURES / "soap" / "response.xml").read_bytes(),
        "fault-fixture": b"\n" + (FIXTURES / "soap" / "fault.xml").read_bytes(),
    },
    "gena": {
        # NT, CALLBACK, SID, TIMEOUT lines
        "new": b"upnp:event\n<http://192.168.1.5:8080/evt/1>\n\nSecond-1800",
        "new-two-callbacks": b"upnp:event\n<http://192.168.1.20:8123/notify> <http://10.0.0.7/>\n\nsecond-infinite",
        "renew": b"\n\n uuid:abc \nSecond-300",
        "incompatible": b"upnp:event\n<http://192.168.1.5/>\nuuid:abc\n",
    },
    "record": {
        "sim-domain": b"# sim\nuuid = 1d2c3b4a-5f6e-5a7b-8c9d-0e1f2a3b4c5d\nname=web=1\nstate=running\ncpus=2\nmemory_mib=1024\n",
        "state": b"bootid=7\nconfigid=3\ndescription_hash=12345\nhost_uuid=0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b\n",
    },
    "engine_ssdp": {
        "search-all": engine(
            (0x00, search(b"ssdp:all")),
            (0x40, b""),
            (0xE0, b""),
        ),
        "search-kinds": engine(
            (0x00, search(b"upnp:rootdevice")),
            (0x05, search(b"urn:xenplug-org:service:Hypervisor:1", host=b"10.20.0.1:1900", mx=None)),
            (0x20, search(b"uuid:1d2c3b4a-5f6e-5a7b-8c9d-0e1f2a3b4c5d", mx=b"9")),
            (0x60, search(b"urn:xenplug-org:device:Domain:1")),
        ),
        "devices-change-and-shutdown": engine(
            (0x12, b""),
            (0x40, search(b"urn:xenplug-org:service:DomainControl:1")),
            (0x30, b""),
            (0x53, b""),
        ),
        "notify-and-garbage": engine(
            (0x00, MINIUPNPD_NOTIFY),
            (0x08, GSSDP_SEARCH),
            (0x00, b"M-SEARCH * HTTP/1.1\r\n\r\n"),
        ),
    },
    "description": {
        # first line the base URL, rest the body
        "renderer": lines(LOCATION, fixture(DESCRIPTION_RS, "RENDERER")),
        "prefixed": lines(
            fixture(DESCRIPTION_RS, "PREFIXED_LOCATION"), fixture(DESCRIPTION_RS, "PREFIXED")
        ),
        "prefixed-upper-case-base": lines(
            b"HTTP://10.1.2.3:5000/dev/", fixture(DESCRIPTION_RS, "PREFIXED")
        ),
        "hypervisor-fixture": lines(
            LOCATION, (FIXTURES / "description" / "hypervisor.xml").read_bytes()
        ),
    },
    "scpd": {
        "gupnp": fixture(SCPD_RS, "GUPNP"),
        "semantic": fixture(SCPD_RS, "SEMANTIC"),
        "hypervisor-fixture": (FIXTURES / "description" / "Hypervisor.scpd.xml").read_bytes(),
        "domain-control-fixture": (
            FIXTURES / "description" / "DomainControl.scpd.xml"
        ).read_bytes(),
    },
    "soap_response": {
        # first line the service type, second the action, rest the body
        "gupnp": lines(HYPERVISOR_TYPE, b"GetHostInfo", fixture(SOAP_RS, "GUPNP_RESPONSE")),
        "async-upnp": lines(
            HYPERVISOR_TYPE, b"ListVirtualMachines", fixture(SOAP_RS, "ASYNC_UPNP_RESPONSE")
        ),
        "unusual": lines(DOMAIN_TYPE, b"GetState", fixture(SOAP_RS, "UNUSUAL_RESPONSE")),
        "fault-without-description": lines(
            DOMAIN_TYPE, b"Shutdown", fixture(SOAP_RS, "FAULT_WITHOUT_DESCRIPTION")
        ),
        "prefixed-fault": lines(DOMAIN_TYPE, b"Shutdown", fixture(SOAP_RS, "PREFIXED_FAULT")),
        "response-fixture": lines(
            DOMAIN_TYPE, b"Rename", (FIXTURES / "soap" / "response.xml").read_bytes()
        ),
        "fault-fixture": lines(
            DOMAIN_TYPE, b"Rename", (FIXTURES / "soap" / "fault.xml").read_bytes()
        ),
    },
    "gena_event": {
        # first line SID, second TIMEOUT, rest the event body
        "gupnp": lines(SID, b"Second-1800", fixture(GENA_RS, "GUPNP_EVENT")),
        "indented": lines(b" uuid:1 ", b" second-infinite ", fixture(GENA_RS, "INDENTED_EVENT")),
        "no-sid-fixture": lines(
            b"", b"Second-300", (FIXTURES / "gena" / "propertyset.xml").read_bytes()
        ),
        "bad-sid": lines(b"uuid:a b", b"Second-60", b""),
    },
    "journal": {
        "event-line": EVENT_LINE,
        "escaped-record": ESCAPED_RECORD,
        "events": lines(
            EVENT_LINE,
            b"seq=13 time=1700000001 kind=spoof-refused subject=\\x20 network= claim=\\u{202e}x",
        ),
    },
    "xmlrpc": {
        # src/wire/xmlrpc.rs tests
        "xapi-response": fixture(XMLRPC_RS, "XAPI_RESPONSE"),
        "fault": fixture(XMLRPC_RS, "FAULT"),
        "failure": b"<methodResponse><params><param><value><struct><member><name>Status</name>"
        b"<value>Failure</value></member><member><name>ErrorDescription</name><value><array>"
        b"<data><value>VM_BAD_POWER_STATE</value><value>OpaqueRef:1</value><value>halted"
        b"</value><value>running</value></data></array></value></member></struct></value>"
        b"</param></params></methodResponse>",
        "scalars": b"<methodResponse><params><param><value><array><data><value><i4>-7</i4>"
        b"</value><value><i8>9223372036854775807</i8></value><value><boolean>1</boolean>"
        b"</value><value><double>-0.5</double></value><value><dateTime.iso8601>"
        b"20240102T03:04:05Z</dateTime.iso8601></value><value><base64>aGk=</base64></value>"
        b"<value><nil/></value><value>&#13;untyped</value></data></array></value></param>"
        b"</params></methodResponse>",
    },
    "xl_config": {
        # src/backend/xl/config.rs tests
        "typical": fixture("backend/xl/config.rs", "WEB"),
        "escapes-lists": b"name='a#b' # c\nname = \"x\\\"y\"; vcpus=\"3\"\ncpus = [ [1,2], '3' ]\nvif += ['mac=00:16:3e:00:00:01']\n",
        "no-uuid": b"name = 'db'\nmemory = 256\n",
    },
    "json": {
        # The tracker's API answers as the console reads them: src/wire/json.rs and
        # src/console/*.rs tests, then the other documents of src/track/api.rs's schema.
        "tree": fixture("wire/json.rs", "TREE"),
        "provider-tree": fixture("console/tree.rs", "PROVIDER"),
        "tenant-tree": fixture("console/tree.rs", "TENANT"),
        "tree-with-arguments": fixture("console/call.rs", "TREE"),
        "events": fixture("console/watch.rs", "PAGE"),
        "events-renamed": b'{"events":[{"seq":11,"time":1700000000,"kind":"vm-renamed",'
        b'"subject":"acac0001-1111-4a6b-8c9d-0000000000a1","network":"acme","details":'
        b'{"from":"","to":"web \\u2028\\ud83d\\ude00 \\"1\\""}},{"seq":12,"time":1700000001,'
        b'"kind":"spoof-refused","subject":"dead0000-0000-4000-8000-00000000beef","network":'
        b'"acme","details":{"claim":"\\u202ex\\u0000"}}],"last_seq":12}',
        "vm": b'{"uuid":"acac0001-1111-4a6b-8c9d-0000000000a1","name":"acme-1","run_state":'
        b'"running","tenant":"acme","hypervisor":"a1a1a1a1-0000-4000-8000-00000000000a",'
        b'"services":[{"type":"urn:xenplug-org:service:Echo:1","actions":[{"name":"Echo",'
        b'"semantics":["idempotent"],"inputs":["Text"],"outputs":["Reply","Action"]}]}],'
        b'"first_seen":1700000000,"last_seen":1700000042}',
        "action-outputs": b'{"outputs":{"Reply":"hi","B":"2"}}',
        "action-error": b'{"error":{"code":701,"description":"already paused"}}',
        "numbers": b"[0,-0,12,-1.5e+10,3.25E-2,0.0,18446744073709551615,-9223372036854775808,"
        b"18446744073709551616,true,false,null]",
    },
    "xenstore": {
        # src/wire/xenstore.rs tests: a reply and a watch event as xenstored sent them
        "reply-and-event": fixture("wire/xenstore.rs", "WATCH_REPLY_AND_EVENT"),
        "error": struct.pack("<IIII", 16, 3, 0, 7) + b"EACCES\0",
    },
    "xl_output": {
        # src/backend/xl/output.rs tests: what xl printed on Xen 4.17 and 4.20
        "list-verbose": fixture("backend/xl/output.rs", "LIST_VERBOSE"),
        "list-plain": fixture("backend/xl/output.rs", "LIST_PLAIN"),
        "list-long": fixture("backend/xl/output.rs", "LIST_LONG"),
        "info": fixture("backend/xl/output.rs", "INFO"),
    },
    "form": {
        # src/wire/form.rs tests
        "pairs": b"service=urn%3Ax%3A1&action=Echo&Text=x%3B+touch+%2Ftmp%2Fp&flag&&",
        "malformed": b"100%&%zz%4=%ff&euro=%E2%82%AC",
    },
}


def main():
    for target, seeds in SEEDS.items():
        directory = HERE / "corpus" / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
