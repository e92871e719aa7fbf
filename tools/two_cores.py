"""What two busy cores of this machine give: ``.venv/bin/python tools/two_cores.py [--rounds 3]``.

Runs the same single-thread torch kernel (convolutions, like the separation model's) alone, then
twice at once in two processes, and prints for each its wall time, its own CPU time and the share
of the machine's time the hypervisor took (steal, from /proc/stat).  On a virtual machine whose cores
are shared with other guests, two busy cores lose time that one busy core does not: the wall time
grows while each process's CPU time stays the same, and no program on the machine gets 2× from them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

KERNEL = """
import time, torch
torch.set_num_threads(1)
x, conv = torch.randn(1, 16, 512, 128), torch.nn.Conv2d(16, 32, 5, padding=2)
t0, c0 = time.perf_counter(), time.thread_time()
with torch.no_grad():
    for _ in range({n}):
        conv(x)
print(time.perf_counter() - t0, time.thread_time() - c0)
"""


def _steal() -> tuple[int, int]:
    """(steal ticks, all ticks) of the whole machine so far."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def _run(copies: int, n: int) -> tuple[list[tuple[float, float]], float]:
    """Wall and CPU seconds of each of ``copies`` kernels run at once, and the steal share meanwhile."""
    s0 = _steal()
    procs = [subprocess.Popen([sys.executable, "-c", KERNEL.format(n=n)], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    times = [tuple(float(v) for v in p.communicate()[0].split()) for p in procs]
    s1 = _steal()
    return times, (s1[0] - s0[0]) / max(1, s1[1] - s0[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=120, help="convolutions per kernel (120: about 3 s)")
    args = ap.parse_args()
    gains = []
    for r in range(args.rounds):
        alone = None
        for copies in (1, 2):
            times, steal = _run(copies, args.iterations)
            walls = ", ".join(f"wall {w:.2f} s, CPU {c:.2f} s" for w, c in times)
            line = f"round {r + 1}, {copies} at once: {walls}; steal {100 * steal:.0f} %"
            if copies == 1:
                alone = times[0][0]
            else:
                gains.append(2 * alone / max(w for w, _ in times))
                line += f"; two cores gave {gains[-1]:.2f}× one"
            print(line, flush=True)
    gains.sort()
    print(f"two cores against one: median {gains[len(gains) // 2]:.2f}× (each round: "
          + ", ".join(f"{g:.2f}×" for g in gains) + ")")


if __name__ == "__main__":
    main()
