#!/usr/bin/env python3
"""Interop peer: async-upnp-client (PyPI) driven by the integration tests.

Run it with the python that has `async_upnp_client` installed (the tests find it; see
tests/common/mod.rs), inside a network namespace the test made. It talks only to the description
URL it is given and listens for events only on --bind. Every command is bounded by --timeout.

Output: one flat JSON object per line on stdout, each with a "kind" (device, service, end, out,
error, subscribed, event); diagnostics on stderr.

Commands:
  tree    build the device tree from the description URL, print it
  call    invoke one action on the Hypervisor service or on one Domain's DomainControl service
  events  subscribe to one service and print each evented variable change as it arrives

`call` and `events` with --service TYPE use the first service of that type in the root device or
any embedded device (for root devices other than the Hypervisor, e.g. a VirtualMachine).

Exit codes: 0 done, 2 usage, 3 timed out, 4 the action returned a SOAP/UPnP error, 5 not found.
"""

import argparse
import asyncio
import json
import sys

from async_upnp_client.aiohttp import AiohttpNotifyServer, AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.exceptions import UpnpActionResponseError, UpnpError

NS_DEVICE = "urn:schemas-upnp-org:device-1-0"
NS_XENPLUG = "urn:xenplug-org:schemas-1-0"
DOMAIN = "urn:xenplug-org:device:Domain:1"
SVC_HYPERVISOR = "urn:xenplug-org:service:Hypervisor:1"
SVC_DOMAIN = "urn:xenplug-org:service:DomainControl:1"


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def log(msg):
    print("aupnp_peer: " + msg, file=sys.stderr, flush=True)


async def build(url, timeout):
    """The root UpnpDevice and one UpnpDevice per embedded <device> element.

    async-upnp-client keys `embedded_devices` by device type, so several embedded devices of the
    same type (one Domain per VM) collapse into one entry. To see every Domain the way this
    library parses it, each embedded <device> element is built on its own with the same factory.
    """
    factory = UpnpFactory(AiohttpRequester(timeout))
    root = await factory.async_create_device(url)
    domains = []
    for element in root.xml.findall("./{%s}deviceList/{%s}device" % (NS_DEVICE, NS_DEVICE)):
        domains.append(await factory._async_create_device(element, url))  # pylint: disable=protected-access
    return root, domains


def vm_uuid(device):
    return device.xml.findtext("./{%s}vmUuid" % NS_XENPLUG)


def target_service(root, domains, vm, service=None):
    if service:
        for dev in [root] + domains:
            if service in dev.services:
                return dev.services[service]
        return None
    if not vm:
        return root.services.get(SVC_HYPERVISOR)
    for dom in domains:
        if vm_uuid(dom) == vm:
            return dom.services.get(SVC_DOMAIN)
    return None


def service_record(device, svc):
    return {
        "kind": "service",
        "device": device.udn,
        "type": svc.service_type,
        "id": svc.service_id,
        "control_url": svc.control_url,
        "event_url": svc.event_sub_url,
        "scpd_url": svc.scpd_url,
        "actions": ",".join(sorted(svc.actions)),
        "variables": ",".join(sorted(svc.state_variables)),
        "evented": ",".join(sorted(n for n, v in svc.state_variables.items() if v.send_events)),
    }


async def cmd_tree(args):
    root, domains = await build(args.url, args.timeout)
    emit(
        {
            "kind": "device",
            "parent": "",
            "udn": root.udn,
            "type": root.device_type,
            "friendly_name": root.friendly_name,
            "vm_uuid": vm_uuid(root) or "",
            "embedded_types": ",".join(sorted(root.embedded_devices)),
        }
    )
    for svc in root.services.values():
        emit(service_record(root, svc))
    for dom in domains:
        emit(
            {
                "kind": "device",
                "parent": root.udn,
                "udn": dom.udn,
                "type": dom.device_type,
                "friendly_name": dom.friendly_name,
                "vm_uuid": vm_uuid(dom) or "",
            }
        )
        for svc in dom.services.values():
            emit(service_record(dom, svc))
    emit({"kind": "end"})
    return 0


async def cmd_call(args):
    root, domains = await build(args.url, args.timeout)
    svc = target_service(root, domains, args.vm, args.service)
    if svc is None:
        log("no such service (vm=%s, service=%s)" % (args.vm, args.service))
        return 5
    inputs = dict(pair.partition("=")[::2] for pair in args.input)
    try:
        out = await svc.action(args.action).async_call(**inputs)
    except UpnpActionResponseError as err:
        emit(
            {
                "kind": "error",
                "code": str(err.error_code),
                "message": str(err),
                "description": err.error_desc or "",
            }
        )
        return 4
    result = {"kind": "out"}
    result.update({k: str(v) for k, v in out.items()})
    emit(result)
    return 0


async def cmd_events(args):
    root, domains = await build(args.url, args.timeout)
    svc = target_service(root, domains, args.vm, args.service)
    if svc is None:
        log("no such service (vm=%s, service=%s)" % (args.vm, args.service))
        return 5
    server = AiohttpNotifyServer(root.requester, source=(args.bind, 0))
    await server.async_start_server()
    log("callback at " + server.callback_url)
    done = asyncio.Event()
    seen = 0

    def on_event(_service, variables):
        nonlocal seen
        for var in variables:
            emit({"kind": "event", "var": var.name, "value": "" if var.value is None else str(var.value)})
            seen += 1
        if args.count and seen >= args.count:
            done.set()

    svc.on_event = on_event
    handler = server.event_handler
    sid, granted = await handler.async_subscribe(svc)
    log("subscribed sid=%s timeout=%s" % (sid, granted))
    emit({"kind": "subscribed", "sid": str(sid), "timeout": str(int(granted.total_seconds()))})
    await done.wait()
    try:
        await handler.async_unsubscribe(svc)
    except UpnpError as err:
        log("unsubscribe failed: %s" % err)
    await server.async_stop_server()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds")
    sub = parser.add_subparsers(dest="command", required=True)
    tree = sub.add_parser("tree")
    tree.add_argument("url")
    call = sub.add_parser("call")
    call.add_argument("url")
    call.add_argument("--vm", help="VM UUID of the Domain (default: the Hypervisor service)")
    call.add_argument("--service", help="service type, in the root or any embedded device")
    call.add_argument("--action", required=True)
    call.add_argument("--in", dest="input", action="append", default=[], help="NAME=VALUE")
    events = sub.add_parser("events")
    events.add_argument("url")
    events.add_argument("--bind", required=True, help="address to receive NOTIFY on")
    events.add_argument("--vm", help="VM UUID of the Domain (default: the Hypervisor service)")
    events.add_argument("--service", help="service type, in the root or any embedded device")
    events.add_argument("--count", type=int, default=0, help="exit after this many events")
    args = parser.parse_args()
    command = {"tree": cmd_tree, "call": cmd_call, "events": cmd_events}[args.command]

    async def bounded():
        try:
            return await asyncio.wait_for(command(args), args.timeout)
        except asyncio.TimeoutError:
            log("timed out after %ss" % args.timeout)
            return 3

    sys.exit(asyncio.run(bounded()))


if __name__ == "__main__":
    main()
