"""`koopsweep agent` and the container entrypoint, without docker: GPU detection, per-agent env, signals, dispatch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from koopsweep import container
from koopsweep.cli import main
from koopsweep.sweeps import gpu_agents as agents
from koopsweep.sweeps.gpu_agents import (
    Agent,
    Device,
    parse_cuda_visible,
    parse_nvidia_smi,
    plan_agents,
    visible_devices,
)

REPO = Path(__file__).resolve().parent.parent
SMI = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5a3c1d2e-0000-1111-2222-333344445555)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-77aa1d2e-0000-1111-2222-333344445555)
  MIG 3g.20gb     Device  0: (UUID: MIG-0c6a2a5e-1111-2222-3333-444455556666)
  MIG 3g.20gb     Device  1: (UUID: MIG-1d7b3b6f-1111-2222-3333-444455556666)
GPU 2: Tesla T4 (UUID: GPU-99bb1d2e-0000-1111-2222-333344445555)
"""


# --- which GPUs -----------------------------------------------------------------------------------------------------


def test_nvidia_smi_listing_pins_by_uuid_and_splits_mig_gpus():
    devices = parse_nvidia_smi(SMI)
    assert [d.cuda_id for d in devices] == [
        "GPU-5a3c1d2e-0000-1111-2222-333344445555",
        "MIG-0c6a2a5e-1111-2222-3333-444455556666",  # GPU 1 is split: its MIG instances, not the GPU itself
        "MIG-1d7b3b6f-1111-2222-3333-444455556666",
        "GPU-99bb1d2e-0000-1111-2222-333344445555",
    ]
    assert devices[0].label == "GPU 0: NVIDIA H100 80GB HBM3"
    assert devices[1].label == "GPU 1 MIG 3g.20gb device 0"
    assert parse_nvidia_smi("GPU 0: Old driver\n") == [Device("0", "GPU 0: Old driver")]  # no UUID: the index
    assert parse_nvidia_smi("No devices were found\n") == []
    real = "GPU 0: NVIDIA H200 (UUID: GPU-8a9d0e63-9bd7-7e6c-4f25-dedc6900cc47)\n"  # an H200 machine's output
    assert parse_nvidia_smi(real) == [Device("GPU-8a9d0e63-9bd7-7e6c-4f25-dedc6900cc47", "GPU 0: NVIDIA H200")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,1", ["0", "1"]),
        (" 2 , 3 ", ["2", "3"]),
        ("GPU-5a3c1d2e-0000,MIG-0c6a2a5e-1111", ["GPU-5a3c1d2e-0000", "MIG-0c6a2a5e-1111"]),
        ("", []),
        ("-1", []),
        ("NoDevFiles", []),  # SLURM's value for a job without GPUs
        ("1,-1,2", ["1"]),  # CUDA stops at the first invalid entry
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, expected):
    assert [d.cuda_id for d in parse_cuda_visible(value)] == expected


def test_cuda_visible_devices_wins_over_nvidia_smi():
    def listing() -> str:
        raise AssertionError("nvidia-smi must not be asked when CUDA_VISIBLE_DEVICES is set")

    assert [d.cuda_id for d in visible_devices({"CUDA_VISIBLE_DEVICES": "3"}, listing)] == ["3"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}, listing) == []
    assert len(visible_devices({}, lambda: SMI)) == 4
    assert visible_devices({}, lambda: None) == []  # no driver: a CPU host


# --- what each agent gets -------------------------------------------------------------------------------------------


def test_one_agent_per_gpu_each_pinned_with_a_share_of_the_cores():
    devices = parse_nvidia_smi(SMI)
    planned = plan_agents("ent/proj/abc123", {}, devices, cores=16)
    assert len(planned) == 4
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in planned] == [d.cuda_id for d in devices]
    assert {a.env["OMP_NUM_THREADS"] for a in planned} == {"4"} == {a.env["MKL_NUM_THREADS"] for a in planned}
    assert all(a.argv == ["wandb", "agent", "ent/proj/abc123"] for a in planned)


def test_agents_override_shares_gpus_round_robin_and_count_is_passed():
    devices = parse_cuda_visible("0,1")
    planned = plan_agents("ent/proj/abc", {}, devices, agents=3, count=5, cores=6)
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in planned] == ["0", "1", "0"]
    assert planned[0].argv == ["wandb", "agent", "--count", "5", "ent/proj/abc"]
    assert planned[0].env["OMP_NUM_THREADS"] == "2"


def test_a_cpu_host_runs_one_agent_and_keeps_the_users_thread_setting():
    (agent,) = plan_agents("abc", {"OMP_NUM_THREADS": "3"}, [], cores=8)
    assert "CUDA_VISIBLE_DEVICES" not in agent.env and agent.device is None
    assert agent.env["OMP_NUM_THREADS"] == "3"
    assert len(plan_agents("abc", {}, [], agents=2, cores=8)) == 2


def _fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)


def test_dry_run_detects_gpus_through_nvidia_smi(tmp_path, monkeypatch, capsys):
    _fake(tmp_path / "bin", "nvidia-smi", f"import sys\nassert sys.argv[1:] == ['-L']\nprint({SMI!r}, end='')\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    main(["agent", "ent/proj/abc", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "4 agents for ent/proj/abc on 4 GPUs:"
    assert "CUDA_VISIBLE_DEVICES=GPU-5a3c1d2e-0000-1111-2222-333344445555 " in out[1]
    assert out[1].endswith(" -m koopsweep agent --in-process ent/proj/abc    # GPU 0: NVIDIA H100 80GB HBM3")
    main(["agent", "ent/proj/abc", "--dry-run", "--cold"])  # a `wandb agent` each, a process per cell
    assert capsys.readouterr().out.splitlines()[1].endswith(" agent ent/proj/abc    # GPU 0: NVIDIA H100 80GB HBM3")


def test_the_default_agents_are_warm_koopsweep_agents_in_process(monkeypatch):
    started = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr(agents, "run_agents", lambda planned, env: started.extend(planned) or 0)
    main(["agent", "ent/proj/abc", "--count", "3"])
    assert [a.argv for a in started] == [
        [sys.executable, "-m", "koopsweep", "agent", "--in-process", "--count", "3", "ent/proj/abc"]
    ] * 2
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in started] == ["0", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agent", "has space"], "sweep 'has space': give the sweep as ENTITY/PROJECT/SWEEP_ID"),
        (["agent", "e/p/s", "--agents", "0"], "--agents 0: give at least 1"),
        (["agent", "e/p/s", "--count", "0"], "--count 0: give at least 1"),
        (["agent", "e/p/s"], "wandb agents cannot reach the W&B server here (WANDB_MODE=disabled)"),
        (["agent", "e/p/s", "--in-process"], "wandb agents cannot reach the W&B server here (WANDB_MODE=disabled)"),
        (["agent", "a b", "--in-process"], "sweep 'a b': give the sweep as ENTITY/PROJECT/SWEEP_ID"),
    ],
)
def test_agent_mistakes_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"koopsweep: error: {message}") and err.count("\n") == 1


def test_agents_start_with_their_env_through_the_wandb_cli(tmp_path, monkeypatch, capsys):
    """The real path to the agents, with a stand-in `wandb` that records what each agent received."""
    record = tmp_path / "agents.jsonl"
    _fake(
        tmp_path / "bin",
        "wandb",
        f"""\
        import json, os, sys
        with open({str(record)!r}, "a") as out:
            out.write(json.dumps({{"argv": sys.argv[1:], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                   "omp": os.environ["OMP_NUM_THREADS"]}}) + "\\n")
        """,
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("koopsweep.commands.agent._cores", lambda: 8)
    main(["agent", "ent/proj/abc", "--count", "2", "--cold"])
    runs = sorted((json.loads(line) for line in record.read_text().splitlines()), key=lambda r: r["cuda"])
    assert runs == [
        {"argv": ["agent", "--count", "2", "ent/proj/abc"], "cuda": cuda, "omp": "4"} for cuda in ("1", "3")
    ]


# --- stopping -------------------------------------------------------------------------------------------------------

# An agent that, like `wandb agent`, runs its training run as a child process; both note the signal they get.
_AGENT = """\
import signal, subprocess, sys, time
out = sys.argv[1]
RUN = (
    "import os, signal, sys, time\\n"
    "def stop(n, f):\\n"
    "    open(sys.argv[1] + '.run', 'w').write(str(n)); sys.exit(0)\\n"
    "signal.signal(signal.SIGTERM, stop)\\n"
    "os.write(1, b'ready\\\\n')\\n"  # one write: the two runs' lines never interleave
    "time.sleep(60)\\n"
)
runs = []
def stop(n, f):
    runs[0].wait(); open(out + ".agent", "w").write(str(n)); sys.exit(3)
signal.signal(signal.SIGTERM, stop)  # before the run starts, so the agent is ready once its run is
runs.append(subprocess.Popen([sys.executable, "-c", RUN, out]))
time.sleep(60)
"""

_RUNNER = """\
import sys
from koopsweep.sweeps.gpu_agents import Agent, run_agents
agents = [Agent([sys.executable, "-c", sys.argv[1], f"{sys.argv[2]}/{i}"], {"CUDA_VISIBLE_DEVICES": str(i)})
          for i in range(2)]
sys.exit(run_agents(agents))
"""


def test_sigterm_reaches_every_agent_and_its_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, _AGENT, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert [runner.stdout.readline() for _ in range(2)] == ["ready\n", "ready\n"]  # both runs are training
        start = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 3  # the agents' status
    finally:
        if runner.poll() is None:
            runner.kill()
    assert time.monotonic() - start < 20
    for i in range(2):
        assert (tmp_path / f"{i}.run").read_text() == str(int(signal.SIGTERM))  # the training run itself
        assert (tmp_path / f"{i}.agent").read_text() == str(int(signal.SIGTERM))


def test_exit_status_is_the_first_failure():
    assert agents.exit_status([0, 0]) == 0
    assert agents.exit_status([0, 2, 1]) == 2
    assert agents.exit_status([-int(signal.SIGKILL)]) == 128 + int(signal.SIGKILL)


def test_a_stop_while_starting_starts_no_more_agents(tmp_path, monkeypatch):
    """Started agents are stopped, the rest never start, when SIGTERM arrives between two starts."""
    marker = tmp_path / "started"
    popen = subprocess.Popen

    def start_then_stop(*args, **kwargs):
        proc = popen(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # docker stop, right after the first agent started
        return proc

    monkeypatch.setattr(agents.subprocess, "Popen", start_then_stop)
    first = Agent([sys.executable, "-c", "import time; time.sleep(60)"])
    second = Agent([sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    start = time.monotonic()
    assert agents.run_agents([first, second]) == 128 + int(signal.SIGTERM)  # the first, stopped by the signal
    assert time.monotonic() - start < 20
    assert not marker.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


# --- the container entrypoint ---------------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return {"bash": "/bin/bash", "wandb": "/usr/bin/wandb", "koopsweep": "/usr/bin/koopsweep"}.get(name)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["-m", "pruner.fraction=0.5,0.9"],
        ["model=mnistnet", "device=cuda"],
        ["sweep", "local", "smoke"],
        ["agent", "ent/proj/abc"],
        ["store", "list"],
        ["report", "outputs"],
        ["typo"],
    ],
)
def test_entrypoint_passes_koopsweep_arguments_to_koopsweep(argv):
    assert container.command(argv, _which) == [sys.executable, "-m", "koopsweep", *argv]


@pytest.mark.parametrize("argv", [["bash"], ["wandb", "sync", "/work/outputs"], ["koopsweep", "--version"]])
def test_entrypoint_runs_other_programs_as_given(argv):
    assert container.command(argv, _which) == argv


def test_entrypoint_execs_koopsweep(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "koopsweep.container", "agent", "e/p/s", "--dry-run"],
        capture_output=True,
        text=True,
        env={**env, "CUDA_VISIBLE_DEVICES": "0"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1 agent for e/p/s on 1 GPU:\n  CUDA_VISIBLE_DEVICES=0 ")
