#!/usr/bin/python3
"""Interop peer: a UPnP device hosted by GUPnP 1.6 (through PyGObject), for testing xenplug's
control-point side (the tracker and the console) against a device xenplug did not write.

It must run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gupnp-1.6), inside a network
namespace the test made (`ip netns exec NS /usr/bin/python3 gupnp_device.py ...`). GUPnP sends
and listens only on the interface given with --iface (GUPnP.Context.new_full).

Roles (--role):
  vm          a VirtualMachine root device shaped as xenplug's VM advertiser writes it: device
              type urn:xenplug-org:device:VirtualMachine:1, UDN uuid:<--uuid>, the same UUID in
              <xenplug:vmUuid>, and one owner service urn:example-org:service:Echo:1 with
              Echo(Text) -> Reply and the evented variable LastText (set by every Echo).
  hypervisor  a Hypervisor root device (urn:xenplug-org:device:Hypervisor:1, UDN
              uuid:<--uuid>) with the Hypervisor service, GetVirtualMachineIds and the evented
              VirtualMachineIds (initially --vms), and no Domain devices: what it places, it
              places by GENA alone.

The description and SCPD are written by this script into --dir and served by GUPnP as files.

Commands: lines appended to --commands FILE (read every 100 ms):
  set VARIABLE VALUE   GUPnP notifies the new value to every subscriber (GENA)
  stop                 byebye (set_available(False)), then exit 0 a moment later
SIGTERM does the same as `stop`.

Output: one flat JSON object per line on stdout: ready (location, udn), announced (GSSDP's
start-up burst of byebyes then alives is over), action (name, args), notified (variable,
value), stopping; diagnostics on stderr.
"""

import argparse
import json
import os
import signal
import sys

import gi

gi.require_version("GSSDP", "1.6")
gi.require_version("GUPnP", "1.6")
from gi.repository import GLib, GObject, GSSDP, GUPnP  # noqa: E402

VM_DEVICE = "urn:xenplug-org:device:VirtualMachine:1"
HYPERVISOR_DEVICE = "urn:xenplug-org:device:Hypervisor:1"
NS_XENPLUG = "urn:xenplug-org:schemas-1-0"
ECHO_SERVICE = "urn:example-org:service:Echo:1"
ECHO_SERVICE_ID = "urn:example-org:serviceId:Echo"
HYPERVISOR_SERVICE = "urn:xenplug-org:service:Hypervisor:1"
HYPERVISOR_SERVICE_ID = "urn:xenplug-org:serviceId:Hypervisor"


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def log(msg):
    print("gupnp_device: " + msg, file=sys.stderr, flush=True)


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def description(args):
    """The description document: xenplug's VM advertiser's shape for --role vm."""
    if args.role == "vm":
        device_type, service_type, service_id, name = (
            VM_DEVICE,
            ECHO_SERVICE,
            ECHO_SERVICE_ID,
            "Echo",
        )
        vendor = "<xenplug:vmUuid>%s</xenplug:vmUuid>\n" % args.uuid
    else:
        device_type, service_type, service_id, name = (
            HYPERVISOR_DEVICE,
            HYPERVISOR_SERVICE,
            HYPERVISOR_SERVICE_ID,
            "Hypervisor",
        )
        vendor = ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<root xmlns="urn:schemas-upnp-org:device-1-0" xmlns:xenplug="%s" configId="1">\n'
        "<specVersion><major>1</major><minor>1</minor></specVersion>\n"
        "<device>\n"
        "<deviceType>%s</deviceType>\n"
        "<friendlyName>%s</friendlyName>\n"
        "<manufacturer>GUPnP interop peer</manufacturer>\n"
        "<modelName>gupnp_device.py</modelName>\n"
        "<UDN>%s</UDN>\n"
        "<serviceList><service>"
        "<serviceType>%s</serviceType>"
        "<serviceId>%s</serviceId>"
        "<SCPDURL>/%s.xml</SCPDURL>"
        "<controlURL>/%s/control</controlURL>"
        "<eventSubURL>/%s/event</eventSubURL>"
        "</service></serviceList>\n"
        "%s"
        "</device>\n"
        "</root>\n"
    ) % (NS_XENPLUG, device_type, esc(args.name), esc(udn(args)), service_type, service_id, name,
         name, name, vendor)


def udn(args):
    """The UDN as the description writes it: uuid:<--uuid>, or --udn verbatim."""
    return args.udn if args.udn else "uuid:" + args.uuid


def scpd(args):
    if args.role == "vm":
        actions = (
            "<action><name>Echo</name><argumentList>"
            "<argument><name>Text</name><direction>in</direction>"
            "<relatedStateVariable>A_ARG_TYPE_Text</relatedStateVariable></argument>"
            "<argument><name>Reply</name><direction>out</direction>"
            "<relatedStateVariable>A_ARG_TYPE_Text</relatedStateVariable></argument>"
            "</argumentList></action>"
        )
        variables = (
            '<stateVariable sendEvents="no"><name>A_ARG_TYPE_Text</name>'
            "<dataType>string</dataType></stateVariable>"
            '<stateVariable sendEvents="yes"><name>LastText</name>'
            "<dataType>string</dataType></stateVariable>"
        )
    else:
        actions = (
            "<action><name>GetVirtualMachineIds</name><argumentList>"
            "<argument><name>VirtualMachineIds</name><direction>out</direction>"
            "<relatedStateVariable>VirtualMachineIds</relatedStateVariable></argument>"
            "</argumentList></action>"
        )
        variables = (
            '<stateVariable sendEvents="yes"><name>VirtualMachineIds</name>'
            "<dataType>string</dataType></stateVariable>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<scpd xmlns="urn:schemas-upnp-org:service-1-0">\n'
        "<specVersion><major>1</major><minor>1</minor></specVersion>\n"
        "<actionList>%s</actionList>\n"
        "<serviceStateTable>%s</serviceStateTable>\n"
        "</scpd>\n"
    ) % (actions, variables)


def string_value(text):
    value = GObject.Value(GObject.TYPE_STRING)
    value.set_string(text)
    return value


class Device:
    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.stopping = False
        self.commands_offset = 0
        if args.role == "vm":
            self.values = {"LastText": ""}
            service_type, scpd_name = ECHO_SERVICE, "Echo.xml"
        else:
            self.values = {"VirtualMachineIds": args.vms}
            service_type, scpd_name = HYPERVISOR_SERVICE, "Hypervisor.xml"
        os.makedirs(args.dir, exist_ok=True)
        desc_path = os.path.join(args.dir, "description.xml")
        with open(desc_path, "w", encoding="utf-8") as f:
            f.write(description(args))
        with open(os.path.join(args.dir, scpd_name), "w", encoding="utf-8") as f:
            f.write(scpd(args))
        self.context = GUPnP.Context.new_full(
            args.iface, None, args.port, GSSDP.UDAVersion.VERSION_1_1
        )
        self.root = GUPnP.RootDevice.new(self.context, desc_path, args.dir)
        self.service = self.root.get_service(service_type)
        if self.service is None:
            raise SystemExit("GUPnP did not create the service " + service_type)
        # GUPnP 1.6.3 answers 401 Invalid Action unless a handler is connected with the
        # action's name as detail; an undetailed "action-invoked" handler is never called.
        for action in ["Echo"] if args.role == "vm" else ["GetVirtualMachineIds"]:
            self.service.connect("action-invoked::" + action, self.on_action)
        # No "query-variable" handler: PyGObject cannot marshal its uninitialised GValue
        # argument ("TypeError: unknown type (null)"), so the handler is never run and GUPnP
        # sends the initial event of a new subscription as an empty property set. Values reach
        # subscribers through `set` commands (notify_value) only.

    def run(self):
        self.root.set_available(True)
        emit(
            {
                "kind": "ready",
                "location": self.root.get_location(),
                "udn": self.root.get_udn(),
                "server_port": self.context.get_port(),
            }
        )
        # GSSDP first sends ssdp:byebye for each of the 4 resources (root, UDN, device type,
        # service type), then 3 rounds of ssdp:alive, one message per message-delay (120 ms).
        # "announced" says that burst is over: a control point started later sees no byebye.
        GLib.timeout_add(4 * 4 * self.message_delay() + 500, self.on_announced)
        GLib.timeout_add(100, self.poll_commands)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.on_sigterm)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, self.on_sigterm)
        self.loop.run()
        return 0

    def message_delay(self):
        group = self.root.get_ssdp_resource_group()
        return group.get_message_delay() if group is not None else 120

    def on_announced(self):
        emit({"kind": "announced"})
        return False

    def on_action(self, _service, action):
        name = action.get_name()
        if name == "Echo":
            text = action.get_value("Text", GObject.TYPE_STRING) or ""
            emit({"kind": "action", "name": name, "Text": text})
            action.set_value("Reply", string_value(text))
            action.return_success()
            self.notify("LastText", text)
        elif name == "GetVirtualMachineIds":
            emit({"kind": "action", "name": name})
            action.set_value("VirtualMachineIds", string_value(self.values["VirtualMachineIds"]))
            action.return_success()
        else:
            emit({"kind": "action", "name": name, "refused": True})
            action.return_error(401, "Invalid Action")

    def notify(self, variable, text):
        self.values[variable] = text
        self.service.notify_value(variable, string_value(text))
        emit({"kind": "notified", "variable": variable, "value": text})

    def poll_commands(self):
        if self.stopping or not self.args.commands:
            return not self.stopping
        try:
            with open(self.args.commands, "r", encoding="utf-8") as f:
                f.seek(self.commands_offset)
                data = f.read()
        except FileNotFoundError:
            return True
        # Only whole lines; the rest is read again next time.
        whole = data[: data.rfind("\n") + 1]
        self.commands_offset += len(whole.encode("utf-8"))
        for line in whole.splitlines():
            words = line.split(" ", 2)
            if words[0] == "set" and len(words) >= 2:
                self.notify(words[1], words[2] if len(words) == 3 else "")
            elif words[0] == "stop":
                self.stop()
            elif line.strip():
                log("unknown command %r" % line)
        return not self.stopping

    def on_sigterm(self):
        self.stop()
        return False

    def stop(self):
        if self.stopping:
            return
        self.stopping = True
        emit({"kind": "stopping"})
        # GSSDP sends ssdp:byebye for every resource of the group when it becomes unavailable.
        self.root.set_available(False)
        GLib.timeout_add(4 * self.message_delay() + 500, self.loop.quit)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iface", required=True)
    parser.add_argument("--role", choices=["vm", "hypervisor"], default="vm")
    parser.add_argument("--uuid", required=True, help="UDN uuid (and vmUuid for --role vm)")
    parser.add_argument("--udn", help="the UDN written verbatim instead of uuid:<--uuid>, as a "
                        "stack that spells it otherwise would (UUID:<UPPER CASE>)")
    parser.add_argument("--name", default="gupnp-vm")
    parser.add_argument("--vms", default="", help="initial VirtualMachineIds (hypervisor)")
    parser.add_argument("--dir", required=True, help="where the description files are written")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--commands", help="file of command lines (see above)")
    args = parser.parse_args()
    return Device(args).run()


if __name__ == "__main__":
    sys.exit(main())
