"""DistributedDataParallel training through torchrun: two CPU processes on the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_cpu_processes_train_in_step_with_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "dfdnet_core.cli", "train", "--config", str(ROOT / "configs" / "train_smoke.yaml"),
        "--out-dir", str(out), "--set", "max_steps=2", "--set", "validate_every_steps=0", "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # both ranks finished; rank 0 alone wrote the files
    assert done.stdout.count("trained 2 steps") == 2, done.stdout
    summary = json.loads((out / "log.json").read_text())["summary"]
    assert summary["world_size"] == 2
    # every rank renders different stacks, so equal weights after two steps mean the gradients were averaged
    assert summary["ranks_in_sync"] is True
    assert (out / "model.safetensors").is_file()
