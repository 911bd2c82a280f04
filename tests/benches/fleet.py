#!/usr/bin/env python3
"""Benchmark (not a test): one tracker in front of a fleet of simulated hypervisors.

Each scenario HOSTSxDOMAINS starts HOSTS `xenplug advertise hypervisor --backend sim`
processes, DOMAINS domains each, each in a network namespace of its own (one routing table per
host), all on one bridge whose ports are isolated from each other (a hypervisor hears the
tracker and nothing of the other hypervisors: a hundred processes parsing each other's
announcements would only load the machine), and then a tracker in a namespace of its own on
the same bridge. It prints one table row per scenario:

- converge: seconds from the tracker's start until every hypervisor and VM is in the
  repository (files) and in `GET /api/tree`;
- drops: datagrams the tracker's namespace dropped for a full socket receive buffer
  (`RcvbufErrors` of /proc/net/snmp) during the run, and the drops the tracker itself counted
  (SO_RXQ_OVFL, from its log), which must agree;
- RssAnon of the tracker: before any device (its own empty figure: the same tracker on an
  empty network), at the peak during ingestion (sampled every 50 ms), and steady (5 s after
  convergence); bytes per VM above empty, and peak / steady. A peak shorter than the sampling
  can be missed, so the notes under the table also give the kernel's high-water mark of the
  tracker's resident memory (VmHWM) less its file-backed pages at the steady state: the
  anonymous peak however short;
- tree: time of `GET /api/tree` (whole tree) and of one `GET /api/vms/<uuid>`, by curl in
  the tracker's namespace, median of 5;
- new VM: from writing a new domain file into a random hypervisor's sim directory to its
  `vm-added` line in events.log (read every 2 ms), p50 and p99 over --trials trials, one
  every 0.5 s, while the fleet runs;
- hv cpu: CPU seconds a minute of the busiest hypervisor while no domain changes but the
  tracker starts, describes and subscribes to it (its process's utime + stime from its
  start-up to the tracker's steady state); the idle figure is tests/benches/peers.sh's.

Run as root, through tests/benches/fleet.sh (which builds the release artifact), or directly:
  tests/benches/fleet.py --bin PATH [--scenario 100x100] [--scenario 1x1000] [--trials 30]

Network safety: every process that sends or receives is started with `ip netns exec` in a
namespace this script made (xpf-*-PID-*), on an interface it names; this process itself opens
no socket. Everything is bounded: each wait has a deadline, and the whole run ends within
--budget seconds per scenario (default 240). Namespaces, processes and files are removed at
exit, also on Ctrl-C.
"""

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

API_PORT = 8700
TRACKER_ADDR = "10.97.0.2"


def sh(*args, check=True, timeout=30, capture=True):
    """Runs a host-side command (namespace plumbing, no traffic of its own)."""
    result = subprocess.run(
        list(args), check=False, timeout=timeout,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result.stdout if capture else ""


def ipn(ns, *args):
    sh("ip", "-n", ns, *args)


def hv_addr(index):
    """Address of hypervisor `index` (0-based): 10.97.1.1 onwards, 250 per /24."""
    return f"10.97.{1 + index // 250}.{1 + index % 250}"


def status_kib(pid, field):
    """A `KiB` field of /proc/PID/status (RssAnon, VmHWM, ...), None when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_anon(pid):
    return status_kib(pid, "RssAnon")


def anon_high_water(pid):
    """VmHWM less the file-backed and shared pages resident now: the peak of anonymous memory,
    counted by the kernel (the binary's pages are resident throughout)."""
    values = [status_kib(pid, field) for field in ("VmHWM", "RssFile", "RssShmem")]
    if None in values:
        return None
    return values[0] - values[1] - values[2]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rcvbuf_errors(ns):
    text = sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp")
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


class Fleet:
    """The namespaces, processes and files of one scenario; `close` removes them all."""

    def __init__(self, binary, hosts, domains, work):
        self.binary = binary
        self.hosts = hosts
        self.domains = domains
        self.work = work
        tag = os.getpid()
        self.br_ns = f"xpf-br-{tag}"
        self.hv_ns = [f"xpf-hv-{tag}-{index}" for index in range(hosts)]
        self.trk_ns = f"xpf-trk-{tag}"
        self.empty_ns = f"xpf-empty-{tag}"
        self.namespaces = [self.br_ns, self.trk_ns, self.empty_ns, *self.hv_ns]
        self.procs = []
        self.sim_dirs = []

    # ---- topology -------------------------------------------------------------------------

    def attach(self, ns, port, address, isolated):
        """Gives `ns` a leg eth0 with `address`/16 on the bridge through `port`."""
        ipn(self.br_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ipn(self.br_ns, "link", "set", port, "master", "br0")
        if isolated:
            # Isolated ports reach the tracker's port only, never each other.
            ipn(self.br_ns, "link", "set", port, "type", "bridge_slave", "isolated", "on")
        ipn(self.br_ns, "link", "set", port, "up")
        ipn(ns, "addr", "add", f"{address}/16", "dev", "eth0")
        ipn(ns, "link", "set", "eth0", "multicast", "on")
        ipn(ns, "link", "set", "eth0", "up")
        ipn(ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def build(self):
        for ns in self.namespaces:
            sh("ip", "netns", "add", ns)
            ipn(ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
               "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        ipn(self.br_ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        ipn(self.br_ns, "link", "set", "br0", "up")
        self.attach(self.trk_ns, "ptrk", TRACKER_ADDR, False)
        for index, ns in enumerate(self.hv_ns):
            self.attach(ns, f"p{index}", hv_addr(index), True)
        # The empty network: the tracker's own figure without any device.
        ipn(self.empty_ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        ipn(self.empty_ns, "link", "set", "eth1", "up")
        ipn(self.empty_ns, "addr", "add", f"{TRACKER_ADDR}/16", "dev", "eth0")
        ipn(self.empty_ns, "link", "set", "eth0", "multicast", "on")
        ipn(self.empty_ns, "link", "set", "eth0", "up")
        ipn(self.empty_ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        deadline = time.monotonic() + 20
        while "LOWER_UP" not in sh("ip", "-n", self.trk_ns, "-o", "link", "show", "eth0"):
            if time.monotonic() > deadline:
                raise RuntimeError("the tracker's link never came up")
            time.sleep(0.1)

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in self.namespaces:
            for _ in range(20):
                pids = sh("ip", "netns", "pids", ns, check=False).split()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (OSError, ValueError):
                        pass
                time.sleep(0.05)
            sh("ip", "netns", "del", ns, check=False)

    # ---- processes ------------------------------------------------------------------------

    def spawn(self, ns, args, log, level="info"):
        env = dict(os.environ, XENPLUG_LOG=level)
        for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.pop(var, None)
        with open(log, "wb") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, self.binary, *args],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        self.procs.append(proc)
        return proc

    def write_domain(self, directory, vm, name):
        text = f"uuid={vm}\nname={name}\nstate=running\nmemory_kib=1048576\nvcpus=2\n"
        temporary = os.path.join(directory, f".{name}.tmp")
        with open(temporary, "w") as out:
            out.write(text)
        os.rename(temporary, os.path.join(directory, f"{name}.domain"))

    def start_hypervisors(self):
        for index in range(self.hosts):
            directory = os.path.join(self.work, f"sim-{index}")
            state = os.path.join(self.work, f"state-{index}")
            os.makedirs(directory)
            os.makedirs(state)
            with open(os.path.join(directory, "host"), "w") as out:
                out.write(f"uuid={uuid.uuid4()}\nname=dom0-{index}\n")
            for n in range(self.domains):
                self.write_domain(directory, uuid.uuid4(), f"vm-{index}-{n}")
            self.sim_dirs.append(directory)
        logs = []
        self.hv_pids = []
        for index in range(self.hosts):
            log = os.path.join(self.work, f"hv-{index}.log")
            proc = self.spawn(self.hv_ns[index], ["advertise", "hypervisor", "--iface", "eth0",
                                    "--backend", "sim", "--sim-dir", self.sim_dirs[index],
                                    "--state-dir", os.path.join(self.work, f"state-{index}")],
                       log, level="info")
            self.hv_pids.append(proc.pid)
            logs.append(log)
        deadline = time.monotonic() + 60 + self.hosts * 0.5
        for log in logs:
            while True:
                with open(log, "rb") as text:
                    if b"description at" in text.read():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a hypervisor never advertised: {log}")
                time.sleep(0.1)

    def start_tracker(self, ns, repo, log):
        os.makedirs(repo)
        proc = self.spawn(ns, ["track", "--net", "mgmt=eth0:provider", "--repo", repo,
                               "--api", f"127.0.0.1:{API_PORT}"], log)
        return proc


def curl(ns, path, timeout=10):
    """GET http://127.0.0.1:8700PATH inside `ns`: (body, seconds)."""
    out = sh("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", str(timeout),
             "-w", "\n%{http_code} %{time_total}", f"http://127.0.0.1:{API_PORT}{path}",
             check=False, timeout=timeout + 5)
    body, _, tail = out.rpartition("\n")
    parts = tail.split()
    if len(parts) != 2 or parts[0] != "200":
        return None, None
    return body, float(parts[1])


def tree_counts(body):
    """Hypervisors and placed VMs in a provider tree, counted without a JSON parser's memory."""
    return body.count('"boot_id"') if body else 0, body.count('"run_state"') if body else 0


class Sampler(threading.Thread):
    """Samples a process's RssAnon every 50 ms; `peak` is the largest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            value = rss_anon(self.pid)
            if value is None:
                return
            self.peak = max(self.peak, value)
            time.sleep(0.05)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def scenario(binary, hosts, domains, trials, budget):
    work = tempfile.mkdtemp(prefix=f"xpf-{hosts}x{domains}-")
    fleet = Fleet(binary, hosts, domains, work)
    row = {"scenario": f"{hosts} x {domains}", "vms": hosts * domains}
    ends = time.monotonic() + budget

    def left():
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise RuntimeError("over the scenario's time budget")
        return remaining

    try:
        fleet.build()
        # The tracker's figure on an empty network, same binary and flags.
        empty = fleet.start_tracker(fleet.empty_ns, os.path.join(work, "repo-empty"),
                                    os.path.join(work, "track-empty.log"))
        time.sleep(4)
        row["empty"] = rss_anon(empty.pid)
        empty.kill()
        empty.wait()
        fleet.start_hypervisors()
        time.sleep(2)  # their start-up announcements are over
        hv_cpu = [cpu_seconds(pid) for pid in fleet.hv_pids]
        hv_idle_start = time.monotonic()
        drops_before = rcvbuf_errors(fleet.trk_ns)
        repo = os.path.join(work, "repo")
        log = os.path.join(work, "track.log")
        started = time.monotonic()
        tracker = fleet.start_tracker(fleet.trk_ns, repo, log)
        sampler = Sampler(tracker.pid)
        sampler.start()
        converged = None
        while converged is None:
            time.sleep(0.1)
            elapsed = time.monotonic() - started
            if tracker.poll() is not None:
                raise RuntimeError(f"the tracker exited; see {log}")
            if elapsed > min(120, left()):
                break
            try:
                files = (len(os.listdir(os.path.join(repo, "hardware"))),
                         len(os.listdir(os.path.join(repo, "virtual"))))
            except OSError:
                continue
            if files != (hosts, hosts * domains):
                continue
            body, _ = curl(fleet.trk_ns, "/api/tree")
            if tree_counts(body) == (hosts, hosts * domains):
                converged = time.monotonic() - started
        row["converge"] = converged
        time.sleep(5)
        sampler.stopped.set()
        sampler.join()
        row["steady"] = rss_anon(tracker.pid)
        row["peak"] = max(sampler.peak, row["steady"] or 0)
        row["high_water"] = anon_high_water(tracker.pid)
        idle_seconds = time.monotonic() - hv_idle_start
        # Idle here means no domain changed; the tracker's own traffic (searches,
        # descriptions, subscriptions) is included.
        row["hv_cpu"] = max(
            (cpu_seconds(pid) - before) * 60 / idle_seconds
            for pid, before in zip(fleet.hv_pids, hv_cpu))
        row["drops"] = rcvbuf_errors(fleet.trk_ns) - drops_before
        status, _ = curl(fleet.trk_ns, "/api/status")
        row["counted"] = status.split('"dropped":')[1].split("}")[0] if status else "-"
        times = []
        vm_times = []
        for _ in range(5):
            body, seconds = curl(fleet.trk_ns, "/api/tree")
            if seconds is not None:
                times.append(seconds)
        vms = os.listdir(os.path.join(repo, "virtual"))
        for _ in range(5 if vms else 0):
            _, seconds = curl(fleet.trk_ns, f"/api/vms/{random.choice(vms)}")
            if seconds is not None:
                vm_times.append(seconds)
        row["tree_ms"] = statistics.median(times) * 1000 if times else None
        row["vm_ms"] = statistics.median(vm_times) * 1000 if vm_times else None
        row["tree_bytes"] = len(body or "")
        latencies = []
        journal = os.path.join(repo, "events.log")
        with open(journal, "rb") as events:
            events.seek(0, os.SEEK_END)
            for trial in range(trials):
                left()
                index = random.randrange(hosts)
                vm = uuid.uuid4()
                needle = f"kind=vm-added subject={vm}".encode()
                written = time.monotonic()
                fleet.write_domain(fleet.sim_dirs[index], vm, f"new-{trial}")
                seen = None
                pending = b""
                while seen is None and time.monotonic() - written < 10:
                    chunk = events.read()
                    if chunk:
                        pending += chunk
                        if needle in pending:
                            seen = time.monotonic()
                        pending = pending[pending.rfind(b"\n") + 1:]
                    else:
                        time.sleep(0.002)
                latencies.append(None if seen is None else (seen - written) * 1000)
                time.sleep(0.5)
        found = [value for value in latencies if value is not None]
        row["missed"] = len(latencies) - len(found)
        row["p50"] = percentile(found, 0.5) if found else None
        row["p99"] = percentile(found, 0.99) if found else None
        row["drops_after"] = rcvbuf_errors(fleet.trk_ns) - drops_before
        row["warnings"] = sh("grep", "-cE", " (warn|error)", log, check=False).strip()
    finally:
        fleet.close()
        if os.environ.get("XENPLUG_BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return row


def show(value, form):
    return "-" if value is None else form.format(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--scenario", action="append", default=[])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--budget", type=int, default=240,
                        help="seconds one scenario may take, at most")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("fleet.py: run as root (network namespaces)")
    scenarios = args.scenario or ["100x100", "1x1000"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"xenplug fleet benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"binary {args.bin}", flush=True)
    header = ("scenario", "VMs", "converge", "rcvbuf", "empty", "steady", "B/VM", "peak",
              "pk/st", "tree", "vm", "new p50", "new p99", "hv cpu")
    units = ("", "", "s", "drops", "KiB", "KiB", "", "KiB", "", "ms", "ms", "ms", "ms", "s/min")
    form = "{:<11} {:>6} {:>8} {:>6} {:>7} {:>7} {:>6} {:>7} {:>5} {:>6} {:>5} {:>7} {:>7} {:>7}"
    print(form.format(*header))
    print(form.format(*units), flush=True)
    notes = []
    for text in scenarios:
        hosts, domains = (int(part) for part in text.split("x"))
        if not (1 <= hosts <= 1000 and 1 <= domains <= 5000):
            sys.exit(f"fleet.py: scenario {text}: 1-1000 hosts of 1-5000 domains")
        print(f"scenario {text}: {hosts} hypervisors of {domains} domains ...",
              file=sys.stderr, flush=True)
        row = scenario(os.path.realpath(args.bin), hosts, domains, args.trials, args.budget)
        per_vm = None
        if row.get("steady") and row.get("empty"):
            per_vm = (row["steady"] - row["empty"]) * 1024 / row["vms"]
        ratio = row["peak"] / row["steady"] if row.get("steady") else None
        print(form.format(
            row["scenario"], row["vms"], show(row["converge"], "{:.1f}"),
            show(row["drops_after"], "{}"), show(row["empty"], "{}"),
            show(row["steady"], "{}"), show(per_vm, "{:.0f}"), show(row["peak"], "{}"),
            show(ratio, "{:.2f}"), show(row["tree_ms"], "{:.0f}"), show(row["vm_ms"], "{:.1f}"),
            show(row["p50"], "{:.0f}"), show(row["p99"], "{:.0f}"),
            show(row["hv_cpu"], "{:.2f}")), flush=True)
        high_water = row.get("high_water")
        high_ratio = high_water / row["steady"] if high_water and row.get("steady") else None
        notes.append(f"{row['scenario']}: tree {row['tree_bytes']} bytes; new VMs missed "
                     f"{row['missed']}; tracker warnings {row['warnings']}; rcvbuf drops by "
                     f"convergence {row['drops']}; tracker's count: {row['counted']}; "
                     f"anonymous high-water {show(high_water, '{}')} KiB "
                     f"({show(high_ratio, '{:.2f}')} x steady)")
    for note in notes:
        print(note)

if __name__ == "__main__":
    main()
