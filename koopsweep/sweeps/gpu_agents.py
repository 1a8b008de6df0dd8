"""One agent per visible GPU, each pinned to its GPU, stopped together: a box's share of a W&B sweep.

Every agent asks the W&B server for the next grid point and runs it, so N boxes with G GPUs each run N x G points at
a time: ``koopsweep agent --in-process`` runs its points in its own process (koopsweep.sweeps.warm_agent), a
``wandb agent`` (``--cold``) starts ``koopsweep ...`` for each. Each agent sees one device through
``CUDA_VISIBLE_DEVICES`` (``device=auto`` then picks it) and a share of the CPU cores through ``OMP_NUM_THREADS``.
SIGTERM or SIGINT (``docker stop``, SLURM preemption, Ctrl-C) is forwarded to every agent's whole process group, so
the training run under each agent gets it too and saves its state; rerunning the sweep's point later resumes it.

Only the standard library is used here, so the GPU detection runs anywhere (no torch, no CUDA initialisation).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

_GPU = re.compile(r"^GPU (\d+): (.*?)(?: \(UUID: (GPU-[^)]+)\))?\s*$")
_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)\s*$")
_CUDA_ID = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Device:
    """A device an agent can be pinned to: the value for CUDA_VISIBLE_DEVICES and a label for people."""

    cuda_id: str
    label: str


@dataclass(frozen=True)
class Agent:
    """One agent process: its command, the variables set for it, and the device it is pinned to (None: CPU)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    device: Device | None = None

    def shell(self) -> str:
        """The agent as one shell line, variables first (what ``koopsweep agent --dry-run`` prints)."""
        line = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])
        return f"{line}    # {self.device.label if self.device else 'CPU'}"


def parse_cuda_visible(value: str) -> list[Device]:
    """Devices named by CUDA_VISIBLE_DEVICES; like CUDA, stop at the first entry that is not a device (``-1``,
    ``NoDevFiles``), so ``""`` or ``-1`` means no GPU."""
    devices = []
    for entry in value.split(","):
        entry = entry.strip()
        if not _CUDA_ID.match(entry):
            break
        devices.append(Device(entry, f"GPU {entry}" if entry.isdigit() else entry))
    return devices


def parse_nvidia_smi(listing: str) -> list[Device]:
    """Devices in ``nvidia-smi -L`` output, by UUID (independent of CUDA's device order); a GPU split into MIG
    instances contributes its instances instead of itself."""
    gpus: list[tuple[Device, list[Device]]] = []
    for line in listing.splitlines():
        gpu, mig = _GPU.match(line), _MIG.match(line)
        if gpu:
            index, name, uuid = gpu.groups()
            gpus.append((Device(uuid or index, f"GPU {index}: {name}"), []))
        elif mig and gpus:
            profile, number, uuid = mig.groups()
            parent = gpus[-1][0].label.split(":")[0]
            gpus[-1][1].append(Device(uuid, f"{parent} MIG {profile} device {number}"))
    return [d for gpu, migs in gpus for d in (migs or [gpu])]


def nvidia_smi_listing() -> str | None:
    """``nvidia-smi -L`` output, or None where there is no NVIDIA driver (CPU host, container without --gpus)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def visible_devices(env: Mapping[str, str], listing: Callable[[], str | None] = nvidia_smi_listing) -> list[Device]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set (SLURM and users restrict with it), else every
    GPU that ``nvidia-smi -L`` lists; none on a CPU host."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_cuda_visible(env["CUDA_VISIBLE_DEVICES"])
    text = listing()
    return parse_nvidia_smi(text) if text else []


def plan_agents(
    sweep: str,
    env: Mapping[str, str],
    devices: Sequence[Device],
    agents: int | None = None,
    count: int | None = None,
    cores: int = 1,
    wandb: Sequence[str] = ("wandb",),
    flags: Sequence[str] = (),
) -> list[Agent]:
    """The agents to start: one per device by default (one on a CPU host); ``agents`` more than devices share them
    round-robin. Each gets ``cores // agents`` threads unless OMP_NUM_THREADS is already set. An agent is
    ``<wandb> agent <flags> [--count N] SWEEP``: the wandb CLI, or koopsweep's own warm agent."""
    n = agents if agents is not None else max(1, len(devices))
    threads = env.get("OMP_NUM_THREADS") or str(max(1, cores // n))
    argv = [*wandb, "agent", *flags, *(["--count", str(count)] if count is not None else []), sweep]
    planned = []
    for i in range(n):
        device = devices[i % len(devices)] if devices else None
        variables = {"CUDA_VISIBLE_DEVICES": device.cuda_id} if device else {}
        variables |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": env.get("MKL_NUM_THREADS") or threads}
        planned.append(Agent(list(argv), variables, device))
    return planned


def exit_status(codes: Sequence[int]) -> int:
    """One exit status for all agents: 0 if every agent succeeded, else the first failure (128 + N for signal N)."""
    for code in codes:
        if code != 0:
            return 128 - code if code < 0 else code
    return 0


def run_agents(planned: Sequence[Agent], base_env: Mapping[str, str] | None = None) -> int:
    """Start every agent in its own process group, forward SIGTERM/SIGINT to each group, wait for all."""
    base = dict(os.environ if base_env is None else base_env)
    procs: list[subprocess.Popen] = []
    stopped: list[int] = []  # the stop signals received so far
    signalled: set[int] = set()  # pids of the agents that got them

    def send(proc: subprocess.Popen, signum: int) -> None:
        signalled.add(proc.pid)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)

    def forward(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        for proc in procs:
            send(proc, signum)

    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        for agent in planned:
            if stopped:  # stopped while starting: start no more
                break
            try:
                proc = subprocess.Popen(agent.argv, env={**base, **agent.env}, start_new_session=True)
            except OSError:
                forward(signal.SIGTERM, None)  # never leave the agents already started running alone
                for proc in procs:
                    proc.wait()
                raise
            procs.append(proc)
            if stopped and proc.pid not in signalled:  # the signal came before it was in the list
                send(proc, stopped[-1])
        return exit_status([proc.wait() for proc in procs])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
