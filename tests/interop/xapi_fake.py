#!/usr/bin/env python3
"""A wire-level XenAPI fake for xenplug's `xapi` backend tests.

An XML-RPC server written on Python's standard library (an implementation of the wire
format independent of xenplug's), speaking XenAPI's conventions: every answer is a struct
{Status: Success, Value} or {Status: Failure, ErrorDescription: [code, params...]}; integers
travel as decimal strings; references are OpaqueRef:... strings; strings are written as
untyped <value>text</value> like xapi does (--typed-strings writes <string> instead).

It implements what the backend calls: session.login_with_password, session.get_this_host,
session.logout, pool.get_all, pool.get_master, host.get_record,
host_metrics.get_memory_total, VM.get_all_records, VM.get_record, VM.get_by_uuid, the
lifecycle calls (start, clean_shutdown, hard_shutdown, clean_reboot, pause, unpause,
suspend, resume) with VM_BAD_POWER_STATE on a wrong transition, and event.from with
tokens, EVENTS_LOST and per-event snapshots.

event.from is what the XenAPI reference says it is: "a blocking call which returns a new token
and a (possibly empty) batch of events"; its timeout (seconds, a double) is how long it waits
for an event of the classes asked after the token before answering an empty batch. Requests
are served on threads, so calls go on while one waits. A waiting call ends early with
EVENTS_LOST when the event stream is lost, and with SESSION_INVALID when its session is
(xapi forgetting its sessions, as at a restart, ends the calls waiting on them).

    xapi_fake.py --state STATE.json --out OUT --commands DIR (--unix PATH | --tcp PORT)

STATE.json (read once): {"user", "password", "host": {...}, "vms": [{...}, ...]}; a VM's
"resident" is "this", "other" or null. OUT is rewritten (atomically) after every change as
key=value lines: vm.<uuid>.power_state, vm.<uuid>.resident, logins, failed_logins,
originator, version, calls.<method>. Every file DIR/*.json is a command, applied and then
removed, at least every 20 ms:
    {"op": "add_vm", "vm": {...}}   {"op": "remove_vm", "uuid": U}
    {"op": "set", "uuid": U, "field": F, "value": V}
    {"op": "invalidate_sessions"}   {"op": "lose_events"}
Prints "listening on unix:PATH" or "listening on http://127.0.0.1:PORT/" once ready.
Stops on SIGTERM, or after --max-seconds.
"""

import argparse
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
import uuid as uuidlib
import xmlrpc.client

NULL = "OpaqueRef:NULL"


def new_ref():
    return "OpaqueRef:" + str(uuidlib.uuid4())


class Failure(Exception):
    def __init__(self, *description):
        super().__init__(description[0])
        self.description = [str(item) for item in description]


def wire(value):
    """XenAPI's encoding: ints (not bools) as decimal strings, None as an empty string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(key): wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire(item) for item in value]
    return value


class Xapi:
    def __init__(self, state, out_path):
        self.user = state.get("user", "root")
        self.password = state["password"]
        self.out_path = out_path
        self.sessions = set()
        self.logins = 0
        self.failed_logins = 0
        self.originator = ""
        self.version = ""
        self.calls = {}
        self.host_ref = new_ref()
        self.other_host_ref = new_ref()
        self.metrics_ref = new_ref()
        self.pool_ref = new_ref()
        self.host = state["host"]
        self.master = self.other_host_ref if self.host.get("master") == "other" else self.host_ref
        self.vms = {}
        self.events = []  # (id, operation, ref, snapshot)
        self.next_id = 1
        self.epoch = 1  # tokens are EPOCH:ID; lose_events starts a new epoch
        # Held around every call and command; event.from waits on it for a change.
        self.changed = threading.Condition()
        for vm in state["vms"]:
            self.add_vm(vm, record_event=False)
        self.write_out()

    # ---- state ----------------------------------------------------------------------------

    def add_vm(self, vm, record_event=True):
        ref = new_ref()
        record = {
            "uuid": vm["uuid"],
            "name_label": vm.get("name_label", "vm"),
            "name_description": "",
            "power_state": vm.get("power_state", "Halted"),
            "is_control_domain": bool(vm.get("is_control_domain", False)),
            "is_a_template": bool(vm.get("is_a_template", False)),
            "is_a_snapshot": bool(vm.get("is_a_snapshot", False)),
            "VCPUs_max": int(vm.get("VCPUs_max", 1)),
            "VCPUs_at_startup": int(vm.get("VCPUs_max", 1)),
            "memory_dynamic_max": int(vm.get("memory_dynamic_max", 512 * 1024 * 1024)),
            "memory_target": 0,
            "domid": -1,
            "resident_on": NULL,
            "affinity": NULL,
            "other_config": {"created_by": "xapi_fake"},
            "tags": [],
        }
        self.vms[ref] = record
        self.place(record, vm.get("resident"))
        if vm.get("affinity") == "other":
            record["affinity"] = self.other_host_ref
        if record_event:
            self.event("add", ref)
        return ref

    def place(self, record, resident):
        running = record["power_state"] in ("Running", "Paused")
        if resident == "other":
            record["resident_on"] = self.other_host_ref
        elif running:
            record["resident_on"] = self.host_ref
        else:
            record["resident_on"] = NULL
        record["domid"] = 7 if running else -1
        record["memory_target"] = record["memory_dynamic_max"] if running else 0

    def event(self, operation, ref):
        self.events.append((self.next_id, operation, ref, dict(self.vms.get(ref, {}))))
        self.next_id += 1
        self.events = self.events[-1000:]
        self.changed.notify_all()

    def by_uuid(self, uuid):
        for ref, record in self.vms.items():
            if record["uuid"] == uuid:
                return ref
        return None

    def write_out(self):
        lines = [
            f"logins={self.logins}",
            f"failed_logins={self.failed_logins}",
            f"originator={self.originator}",
            f"version={self.version}",
            f"sessions={len(self.sessions)}",
        ]
        for record in self.vms.values():
            where = {self.host_ref: "this", self.other_host_ref: "other"}.get(
                record["resident_on"], "none"
            )
            lines.append(f"vm.{record['uuid']}.power_state={record['power_state']}")
            lines.append(f"vm.{record['uuid']}.resident={where}")
        for method, count in sorted(self.calls.items()):
            lines.append(f"calls.{method}={count}")
        temporary = self.out_path + ".tmp"
        with open(temporary, "w") as out:
            out.write("\n".join(lines) + "\n")
        os.replace(temporary, self.out_path)

    def command(self, command):
        op = command.get("op")
        if op == "add_vm":
            self.add_vm(command["vm"])
        elif op == "remove_vm":
            ref = self.by_uuid(command["uuid"])
            if ref is not None:
                self.event("del", ref)
                del self.vms[ref]
        elif op == "set":
            ref = self.by_uuid(command["uuid"])
            if ref is not None:
                record = self.vms[ref]
                record[command["field"]] = command["value"]
                if command["field"] == "power_state":
                    self.place(record, None)
                self.event("mod", ref)
        elif op == "invalidate_sessions":
            self.sessions.clear()
            self.changed.notify_all()
        elif op == "lose_events":
            self.epoch += 1
            self.changed.notify_all()
        else:
            print(f"xapi_fake: unknown command {command!r}", file=sys.stderr)

    # ---- calls ----------------------------------------------------------------------------

    def dispatch(self, method, params):
        with self.changed:
            return self.dispatch_locked(method, params)

    def dispatch_locked(self, method, params):
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "session.login_with_password":
            return self.login(*self.arity(method, params, 2, 4))
        handler = self.METHODS.get(method)
        if handler is None:
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        count = handler.__code__.co_argcount - 1
        args = self.arity(method, params, count, count)
        if not isinstance(args[0], str) or args[0] not in self.sessions:
            raise Failure("SESSION_INVALID", args[0])
        return handler(self, *args)

    @staticmethod
    def arity(method, params, low, high):
        if not low <= len(params) <= high:
            raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, high, len(params))
        return params

    def login(self, user, password, version="", originator=""):
        if user != self.user or password != self.password:
            self.failed_logins += 1
            raise Failure("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
        session = new_ref()
        self.sessions.add(session)
        self.logins += 1
        self.version = version
        self.originator = originator
        return session

    def vm(self, ref):
        if ref not in self.vms:
            raise Failure("HANDLE_INVALID", "VM", ref)
        return self.vms[ref]

    def get_this_host(self, session, other):
        if other != session:
            raise Failure("HANDLE_INVALID", "session", other)
        return self.host_ref

    def logout(self, session):
        self.sessions.discard(session)
        return ""

    def pool_get_all(self, session):
        return [self.pool_ref]

    def pool_get_master(self, session, pool):
        if pool != self.pool_ref:
            raise Failure("HANDLE_INVALID", "pool", pool)
        return self.master

    def host_get_record(self, session, host):
        if host != self.host_ref:
            raise Failure("HANDLE_INVALID", "host", host)
        return {
            "uuid": self.host["uuid"],
            "name_label": self.host.get("name_label", self.host["hostname"]),
            "hostname": self.host["hostname"],
            "software_version": {
                "product_brand": self.host.get("product_brand", "XCP-ng"),
                "product_version": self.host.get("product_version", "8.3.0"),
                "xen": self.host.get("xen", "4.17.4"),
            },
            "cpu_info": {"cpu_count": str(self.host.get("cpu_count", 8)), "vendor": "fake"},
            "metrics": self.metrics_ref,
            "enabled": True,
            "resident_VMs": [ref for ref, r in self.vms.items() if r["resident_on"] == self.host_ref],
        }

    def memory_total(self, session, metrics):
        if metrics != self.metrics_ref:
            raise Failure("HANDLE_INVALID", "host_metrics", metrics)
        return int(self.host.get("memory_total", 32 * 1024**3))

    def get_all_records(self, session):
        return dict(self.vms)

    def get_record(self, session, ref):
        return self.vm(ref)

    def get_by_uuid(self, session, uuid):
        ref = self.by_uuid(uuid)
        if ref is None:
            raise Failure("UUID_INVALID", "VM", uuid)
        return ref

    def transition(self, ref, allowed, target):
        record = self.vm(ref)
        if record["is_a_template"]:
            raise Failure("VM_IS_TEMPLATE", ref)
        if record["power_state"] not in allowed:
            raise Failure("VM_BAD_POWER_STATE", ref, allowed[0].lower(), record["power_state"].lower())
        record["power_state"] = target
        self.place(record, None)
        self.event("mod", ref)
        return ""

    @staticmethod
    def flags(*values):
        for value in values:
            if not isinstance(value, bool):
                raise Failure("FIELD_TYPE_ERROR", "bool expected")

    def start(self, session, ref, start_paused, force):
        self.flags(start_paused, force)
        return self.transition(ref, ["Halted"], "Paused" if start_paused else "Running")

    def clean_shutdown(self, session, ref):
        return self.transition(ref, ["Running"], "Halted")

    def hard_shutdown(self, session, ref):
        return self.transition(ref, ["Running", "Paused", "Suspended"], "Halted")

    def clean_reboot(self, session, ref):
        return self.transition(ref, ["Running"], "Running")

    def pause(self, session, ref):
        return self.transition(ref, ["Running"], "Paused")

    def unpause(self, session, ref):
        return self.transition(ref, ["Paused"], "Running")

    def suspend(self, session, ref):
        return self.transition(ref, ["Running"], "Suspended")

    def resume(self, session, ref, start_paused, force):
        self.flags(start_paused, force)
        return self.transition(ref, ["Suspended"], "Paused" if start_paused else "Running")

    def event_from(self, session, classes, token, timeout):
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise Failure("FIELD_TYPE_ERROR", "classes")
        if not isinstance(timeout, float):
            raise Failure("FIELD_TYPE_ERROR", "timeout")
        wanted = {c.lower() for c in classes}
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            latest = f"{self.epoch}:{self.next_id - 1}"
            if "vm" not in wanted and "*" not in wanted:
                batch = []
            elif token == "":
                batch = [(0, "add", ref, dict(record)) for ref, record in self.vms.items()]
                break
            else:
                epoch, _, since = token.partition(":")
                if epoch != str(self.epoch) or not since.isdigit():
                    raise Failure("EVENTS_LOST")
                since = int(since)
                batch = [event for event in self.events if event[0] > since]
            left = deadline - time.monotonic()
            if batch or left <= 0:
                break
            self.changed.wait(left)
            if session not in self.sessions:
                raise Failure("SESSION_INVALID", session)
        if "vm" not in wanted and "*" not in wanted:
            return {"events": [], "valid_ref_counts": {}, "token": latest}
        events = [
            {
                "id": event_id,
                "class": "vm",
                "operation": operation,
                "ref": ref,
                "obj_uuid": snapshot.get("uuid", ""),
                "snapshot": snapshot,
            }
            for event_id, operation, ref, snapshot in batch
        ]
        return {"events": events, "valid_ref_counts": {"VM": len(self.vms)}, "token": latest}

    METHODS = {
        "session.get_this_host": get_this_host,
        "session.logout": logout,
        "pool.get_all": pool_get_all,
        "pool.get_master": pool_get_master,
        "host.get_record": host_get_record,
        "host_metrics.get_memory_total": memory_total,
        "VM.get_all_records": get_all_records,
        "VM.get_record": get_record,
        "VM.get_by_uuid": get_by_uuid,
        "VM.start": start,
        "VM.clean_shutdown": clean_shutdown,
        "VM.hard_shutdown": hard_shutdown,
        "VM.clean_reboot": clean_reboot,
        "VM.pause": pause,
        "VM.unpause": unpause,
        "VM.suspend": suspend,
        "VM.resume": resume,
        "event.from": event_from,
    }


UNTYPED = re.compile(r"<value><string>([^<]*)</string></value>")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    xapi = None
    typed_strings = False

    def log_message(self, format, *args):
        sys.stderr.write("xapi_fake: " + (format % args) + "\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception as error:  # not XML-RPC: an XML-RPC fault, as a server would
            answer = xmlrpc.client.dumps(xmlrpc.client.Fault(1, f"bad request: {error}"))
            self.reply(answer)
            return
        try:
            value = {"Status": "Success", "Value": wire(self.xapi.dispatch(method, list(params)))}
        except Failure as failure:
            value = {"Status": "Failure", "ErrorDescription": failure.description}
        answer = xmlrpc.client.dumps((value,), methodresponse=True)
        if not self.typed_strings:
            answer = UNTYPED.sub(r"<value>\1</value>", answer)
        with self.xapi.changed:
            self.xapi.write_out()
        self.reply(answer)

    def reply(self, answer):
        data = answer.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def run_commands(xapi, directory):
    names = sorted(name for name in os.listdir(directory) if name.endswith(".json"))
    for name in names[:100]:
        path = os.path.join(directory, name)
        with open(path) as file:
            command = json.load(file)
        os.remove(path)
        with xapi.changed:
            xapi.command(command)
    if names:
        with xapi.changed:
            xapi.write_out()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--commands", required=True)
    parser.add_argument("--unix")
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--typed-strings", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    with open(args.state) as file:
        state = json.load(file)
    xapi = Xapi(state, args.out)
    Handler.xapi = xapi
    Handler.typed_strings = args.typed_strings
    if args.unix:
        if os.path.exists(args.unix):
            os.remove(args.unix)
        server = UnixServer(args.unix, Handler)
        where = f"unix:{args.unix}"
    else:
        server = TcpServer(("127.0.0.1", args.tcp or 0), Handler)
        where = f"http://127.0.0.1:{server.server_address[1]}/"
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.daemon = True
    serving.start()
    print(f"listening on {where}", flush=True)
    deadline = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < deadline:
        run_commands(xapi, args.commands)
        time.sleep(0.02)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
