#!/usr/bin/env python3
"""Interop peer: a VirtualMachine device hosted by async-upnp-client's server side
(async_upnp_client.server.UpnpServer), for testing xenplug's control-point side against a
device xenplug did not write. The same device as gupnp_device.py --role vm: device type
urn:xenplug-org:device:VirtualMachine:1, UDN uuid:<--uuid>, <xenplug:vmUuid> with the same
UUID, one service urn:example-org:service:Echo:1 with Echo(Text) -> Reply and the evented
variable LastText (set by every Echo).

async-upnp-client's description writer has no place for vendor elements: this script adds
<xenplug:vmUuid> by wrapping UpnpXmlSerializer._device_to_xml_bare (the only change made to
the library's behaviour).

Runs inside a network namespace the test made; binds to --addr (the namespace's interface
address: UpnpServer pins its multicast to that source) and HTTP port --port.

Exit 5 (and a line `{"kind": "unsupported", ...}`) when the installed async-upnp-client has
no server side.

Commands: lines appended to --commands FILE (read every 100 ms):
  set VARIABLE VALUE   change an evented variable (async-upnp-client notifies subscribers)
  stop                 byebye (UpnpServer.async_stop), then exit 0
SIGTERM does the same as `stop`.

Output: one flat JSON object per line on stdout: ready (location, udn, version), announced
(as gupnp_device.py says it; here at once), action (name, Text), notified (variable, value),
stopping; diagnostics on stderr.
"""

import argparse
import asyncio
import json
import signal
import sys
import xml.etree.ElementTree as ET

VM_DEVICE = "urn:xenplug-org:device:VirtualMachine:1"
NS_XENPLUG = "urn:xenplug-org:schemas-1-0"
ECHO_SERVICE = "urn:example-org:service:Echo:1"
ECHO_SERVICE_ID = "urn:example-org:serviceId:Echo"


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def log(msg):
    print("aupnp_device: " + msg, file=sys.stderr, flush=True)


try:
    import importlib.metadata

    from async_upnp_client import server as aupnp_server
    from async_upnp_client.client import UpnpStateVariable  # noqa: F401
    from async_upnp_client.const import DeviceInfo, ServiceInfo
    from async_upnp_client.server import (
        UpnpServer,
        UpnpServerDevice,
        UpnpServerService,
        UpnpXmlSerializer,
        callable_action,
        create_event_var,
        create_state_var,
    )

    VERSION = importlib.metadata.version("async-upnp-client")
except ImportError as error:
    emit({"kind": "unsupported", "reason": str(error)})
    sys.exit(5)


def build(args):
    """The device class for --uuid and --name (class attributes are what UpnpServer reads)."""

    class EchoService(UpnpServerService):
        SERVICE_DEFINITION = ServiceInfo(
            service_id=ECHO_SERVICE_ID,
            service_type=ECHO_SERVICE,
            control_url="/Echo/control",
            event_sub_url="/Echo/event",
            scpd_url="/Echo.xml",
            xml=ET.Element("server_service"),
        )
        STATE_VARIABLE_DEFINITIONS = {
            "A_ARG_TYPE_Text": create_state_var("string"),
            "LastText": create_event_var("string", default=""),
        }

        @callable_action(
            name="Echo",
            in_args={"Text": "A_ARG_TYPE_Text"},
            out_args={"Reply": "A_ARG_TYPE_Text"},
        )
        async def echo(self, Text: str):  # noqa: N803 (the UPnP argument's name)
            emit({"kind": "action", "name": "Echo", "Text": Text})
            self.state_variable("LastText").value = Text
            return {"Reply": Text}

    class VmDevice(UpnpServerDevice):
        DEVICE_DEFINITION = DeviceInfo(
            device_type=VM_DEVICE,
            friendly_name=args.name,
            manufacturer="async-upnp-client interop peer",
            manufacturer_url=None,
            model_description=None,
            model_name="aupnp_device.py",
            model_number=None,
            model_url=None,
            serial_number=None,
            udn="uuid:" + args.uuid,
            upc=None,
            presentation_url=None,
            url="/description.xml",
            icons=[],
            xml=ET.Element("server_device"),
        )
        EMBEDDED_DEVICES = []
        SERVICES = [EchoService]

    return VmDevice


def add_vm_uuid(vm_uuid):
    """Wraps the description writer so the VM device carries <xenplug:vmUuid>."""
    ET.register_namespace("xenplug", NS_XENPLUG)
    original = UpnpXmlSerializer._device_to_xml_bare.__func__

    def device_to_xml_bare(cls, device):
        element = original(cls, device)
        if device.device_type == VM_DEVICE:
            ET.SubElement(element, "{%s}vmUuid" % NS_XENPLUG).text = vm_uuid
        return element

    UpnpXmlSerializer._device_to_xml_bare = classmethod(device_to_xml_bare)


async def run(args):
    add_vm_uuid(args.uuid)
    server = UpnpServer(build(args), (args.addr, 0), http_port=args.port)
    await server.async_start()
    device = server._device
    service = device.service(ECHO_SERVICE)
    emit(
        {
            "kind": "ready",
            "location": "http://%s:%d/description.xml" % (args.addr, args.port),
            "udn": device.udn,
            "version": VERSION,
        }
    )
    # UpnpServer sends no byebye before its first alive (GSSDP does): nothing to wait for.
    emit({"kind": "announced"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    offset = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        if not args.commands:
            continue
        try:
            with open(args.commands, "r", encoding="utf-8") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            continue
        whole = data[: data.rfind("\n") + 1]
        offset += len(whole.encode("utf-8"))
        for line in whole.splitlines():
            words = line.split(" ", 2)
            if words[0] == "set" and len(words) >= 2:
                value = words[2] if len(words) == 3 else ""
                service.state_variable(words[1]).value = value
                emit({"kind": "notified", "variable": words[1], "value": value})
            elif words[0] == "stop":
                stop.set()
            elif line.strip():
                log("unknown command %r" % line)
    emit({"kind": "stopping"})
    await server.async_stop()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="the interface's IPv4 address")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uuid", required=True)
    parser.add_argument("--name", default="aupnp-vm")
    parser.add_argument("--commands", help="file of command lines (see above)")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
