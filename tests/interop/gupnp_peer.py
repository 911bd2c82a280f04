#!/usr/bin/python3
"""Interop peer: a GUPnP 1.6 control point (through PyGObject) driven by the integration tests.

It must run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gupnp-1.6), inside a network
namespace the test made (`ip netns exec NS /usr/bin/python3 gupnp_peer.py ...`). It sends only
on the interface given with --iface. Every command is bounded by --timeout.

Output: one flat JSON object per line on stdout, each with a "kind" (device, service, end, out,
error, event, subscription_lost); diagnostics on stderr.

Commands:
  tree    find the Hypervisor root device, introspect every service, print the device tree
  call    invoke one action on the Hypervisor service or on one Domain's DomainControl service
  events  subscribe to one service and print each evented variable change as it arrives

For other root devices (the VM advertiser's VirtualMachine): --device-type picks the root device
type searched for, `tree --all-embedded` lists every embedded device whatever its type, and
`call`/`events` with --service TYPE use the first service of that type in the root device or any
embedded device.

Exit codes: 0 done, 2 usage, 3 timed out, 4 the action returned a SOAP/UPnP error, 5 not found.
"""

import argparse
import json
import sys

import gi

gi.require_version("GSSDP", "1.6")
gi.require_version("GUPnP", "1.6")
from gi.repository import GLib, GObject, GSSDP, GUPnP  # noqa: E402

HYPERVISOR = "urn:xenplug-org:device:Hypervisor:1"
DOMAIN = "urn:xenplug-org:device:Domain:1"
SVC_HYPERVISOR = "urn:xenplug-org:service:Hypervisor:1"
SVC_DOMAIN = "urn:xenplug-org:service:DomainControl:1"


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def log(msg):
    print("gupnp_peer: " + msg, file=sys.stderr, flush=True)


def service_key(service):
    return (service.get_udn(), service.get_id())


class Peer:
    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.status = 3
        self.context = GUPnP.Context.new_full(args.iface, None, 0, GSSDP.UDAVersion.VERSION_1_1)
        self.cp = GUPnP.ControlPoint.new(self.context, args.device_type)
        self.cp.connect("device-proxy-available", self.on_device)
        self.found = False
        self.keep = []
        GLib.timeout_add(int(args.timeout * 1000), self.on_timeout)

    def run(self):
        self.cp.set_active(True)
        self.loop.run()
        return self.status

    def finish(self, status):
        self.status = status
        self.loop.quit()

    def on_timeout(self):
        log("timed out after %ss" % self.args.timeout)
        self.finish(3)
        return False

    def on_device(self, _cp, device):
        if self.found:
            return
        udn = device.get_udn()
        if self.args.udn and udn != self.args.udn:
            log("ignoring root device " + udn)
            return
        self.found = True
        log("root device %s at %s" % (udn, device.get_location()))
        self.device = device
        getattr(self, "do_" + self.args.command.replace("-", "_"))(device)

    # ---- helpers --------------------------------------------------------------------------

    def domains(self, device):
        return [d for d in device.list_devices() if d.get_device_type() == DOMAIN]

    def embedded(self, device):
        """Embedded devices the tree lists: Domains, or every one with --all-embedded."""
        if getattr(self.args, "all_embedded", False):
            return list(device.list_devices())
        return self.domains(device)

    def target_service(self, device):
        """The Hypervisor service, or the DomainControl service of the domain named by --vm,
        or with --service the first service of that type in the root or an embedded device."""
        if getattr(self.args, "service", None):
            for dev in [device] + list(device.list_devices()):
                for svc in dev.list_services():
                    if svc.get_service_type() == self.args.service:
                        return svc
            return None
        if not self.args.vm:
            return device.get_service(SVC_HYPERVISOR)
        for dom in self.domains(device):
            if dom.get_description_value("vmUuid") == self.args.vm:
                return dom.get_service(SVC_DOMAIN)
        return None

    def introspect_all(self, services, done):
        """Introspect every service in turn, then call done(results).

        Results are keyed by (device UDN, service id): PyGObject may hand out a new wrapper for
        the same proxy on each list_services() call, so object identity is no key.
        """
        results = {}
        pending = list(services)

        def next_one():
            if not pending:
                done(results)
                return
            svc = pending.pop(0)

            def finished(info, res, _data=None):
                try:
                    intro = info.introspect_finish(res)
                    results[service_key(info)] = {
                        "actions": sorted(intro.list_action_names()),
                        "variables": sorted(intro.list_state_variable_names()),
                    }
                except GLib.Error as err:
                    results[service_key(info)] = {"error": err.message}
                next_one()

            svc.introspect_async(None, finished, None)

        next_one()

    # ---- tree -----------------------------------------------------------------------------

    def do_tree(self, device):
        devices = [device] + self.embedded(device)
        services = []
        for dev in devices:
            services.extend(dev.list_services())
        self.keep.extend(services)

        def service_record(dev, svc, intros):
            intro = intros.get(service_key(svc), {"error": "not introspected"})
            return {
                "kind": "service",
                "device": dev.get_udn(),
                "type": svc.get_service_type(),
                "id": svc.get_id(),
                "control_url": svc.get_control_url(),
                "event_url": svc.get_event_subscription_url(),
                "scpd_url": svc.get_scpd_url(),
                "actions": ",".join(intro.get("actions", [])),
                "variables": ",".join(intro.get("variables", [])),
                "error": intro.get("error", ""),
            }

        def done(intros):
            emit(
                {
                    "kind": "device",
                    "parent": "",
                    "udn": device.get_udn(),
                    "type": device.get_device_type(),
                    "location": device.get_location(),
                    "friendly_name": device.get_friendly_name() or "",
                    "vm_uuid": device.get_description_value("vmUuid") or "",
                }
            )
            for svc in device.list_services():
                emit(service_record(device, svc, intros))
            for dom in self.embedded(device):
                emit(
                    {
                        "kind": "device",
                        "parent": device.get_udn(),
                        "udn": dom.get_udn(),
                        "type": dom.get_device_type(),
                        "location": dom.get_location(),
                        "friendly_name": dom.get_friendly_name() or "",
                        "vm_uuid": dom.get_description_value("vmUuid") or "",
                    }
                )
                for svc in dom.list_services():
                    emit(service_record(dom, svc, intros))
            emit({"kind": "end"})
            self.finish(0)

        self.introspect_all(services, done)

    # ---- call -----------------------------------------------------------------------------

    def do_call(self, device):
        svc = self.target_service(device)
        if svc is None:
            log("no such service (vm=%s, service=%s)" % (self.args.vm, self.args.service))
            self.finish(5)
            return
        names, values = [], []
        for pair in self.args.input:
            name, _, value = pair.partition("=")
            names.append(name)
            values.append(GObject.Value(GObject.TYPE_STRING, value))
        action = GUPnP.ServiceProxyAction.new_from_list(self.args.action, names, values)
        try:
            svc.call_action(action, None)
            outs = self.args.output
            ok, got = action.get_result_list(outs, [GObject.TYPE_STRING] * len(outs))
        except GLib.Error as err:
            emit({"kind": "error", "code": str(err.code), "message": err.message})
            self.finish(4)
            return
        if not ok:
            emit({"kind": "error", "code": "-1", "message": "get_result_list failed"})
            self.finish(4)
            return
        result = {"kind": "out"}
        result.update({name: "" if value is None else str(value) for name, value in zip(outs, got)})
        emit(result)
        self.finish(0)

    # ---- events ---------------------------------------------------------------------------

    def do_events(self, device):
        svc = self.target_service(device)
        if svc is None:
            log("no such service (vm=%s, service=%s)" % (self.args.vm, self.args.service))
            self.finish(5)
            return
        self.keep.append(svc)
        self.seen = 0

        def on_notify(_proxy, variable, value, _data=None):
            emit({"kind": "event", "var": variable, "value": "" if value is None else str(value)})
            self.seen += 1
            if self.args.count and self.seen >= self.args.count:
                svc.set_subscribed(False)
                GLib.timeout_add(200, lambda: self.finish(0))

        def on_lost(_proxy, err):
            log("subscription lost: " + err.message)
            emit({"kind": "subscription_lost", "message": err.message})
            self.finish(6)

        for var in self.args.var:
            svc.add_notify(var, GObject.TYPE_STRING, on_notify, None)
        svc.connect("subscription-lost", on_lost)
        svc.set_subscribed(True)
        log("subscribing at " + svc.get_event_subscription_url())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iface", required=True, help="interface to use (inside the namespace)")
    parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds")
    parser.add_argument("--udn", help="only this root device (uuid:...)")
    parser.add_argument("--device-type", default=HYPERVISOR, help="root device type to look for")
    sub = parser.add_subparsers(dest="command", required=True)
    tree = sub.add_parser("tree")
    tree.add_argument("--all-embedded", action="store_true", help="every embedded device, not only Domains")
    call = sub.add_parser("call")
    call.add_argument("--vm", help="VM UUID of the Domain (default: the Hypervisor service)")
    call.add_argument("--service", help="service type, in the root or any embedded device")
    call.add_argument("--action", required=True)
    call.add_argument("--in", dest="input", action="append", default=[], help="NAME=VALUE")
    call.add_argument("--out", dest="output", action="append", default=[], help="NAME")
    events = sub.add_parser("events")
    events.add_argument("--vm", help="VM UUID of the Domain (default: the Hypervisor service)")
    events.add_argument("--service", help="service type, in the root or any embedded device")
    events.add_argument("--var", action="append", required=True, help="evented variable name")
    events.add_argument("--count", type=int, default=0, help="exit after this many events")
    args = parser.parse_args()
    sys.exit(Peer(args).run())


if __name__ == "__main__":
    main()
