"""Network namespaces for a cluster test: every machine its own namespace, joined by veth pairs.

``Machines`` makes one hub namespace holding a bridge, and for each machine a namespace with a
loopback and one veth pair (one end inside, named ``eth0``, the other on the hub's bridge), with an
address the test assigns from a private test range.  Nothing is added outside these namespaces:
the host's own network is untouched, and a namespace reaches only the others.  ``prefix(name)``
is how to run a command on that machine; with ``hide`` its processes also get a mount namespace
of their own in which those folders are empty (they cannot see the daemon's state).
"""

from __future__ import annotations

import os
import shutil
import subprocess

SUBNET = "10.213.47"  # a private test range, used only inside the test's namespaces


class NamespacesUnavailable(Exception):
    """Why namespaces cannot be made here (not root, no ``ip``, a container without the right)."""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise NamespacesUnavailable(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")


class Machines:
    def __init__(self, names: list[str]):
        if os.geteuid() != 0:
            raise NamespacesUnavailable("network namespaces need root")
        if shutil.which("ip") is None or shutil.which("unshare") is None:
            raise NamespacesUnavailable("`ip` (iproute2) and `unshare` (util-linux) are needed")
        tag = f"vd{os.getpid() % 100000}"
        self.hub = f"{tag}-hub"
        self.ns = {name: f"{tag}-{name}" for name in names}
        self.address = {name: f"{SUBNET}.{i + 1}" for i, name in enumerate(names)}
        self._made: list[str] = []
        try:
            self._make(tag, names)
        except BaseException:
            self.close()
            raise

    def _make(self, tag: str, names: list[str]) -> None:
        self._add(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, name in enumerate(names):
            ns, outer = self.ns[name], f"{tag}h{i}"
            self._add(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Made inside the machine's namespace, the hub's end moved to the hub: the host never holds either.
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", outer, "netns", self.hub)
            _ip("-n", ns, "addr", "add", f"{self.address[name]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.hub, "link", "set", outer, "master", "br0")
            _ip("-n", self.hub, "link", "set", outer, "up")

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)

    def prefix(self, name: str, hide: tuple[str, ...] = ()) -> list[str]:
        """The command prefix that runs a program on machine ``name`` (the program keeps its pid:
        ``ip netns exec``, ``unshare`` and the shell all exec)."""
        cmd = ["ip", "netns", "exec", self.ns[name]]
        if hide:
            mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=0 none '{d}'" for d in hide)
            cmd += ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]
        return cmd

    def close(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._made.clear()
