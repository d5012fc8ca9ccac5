"""The accelerator: DeepSpeed stays quiet about its CPU fallback on CPU runs."""

import os
import subprocess
import sys

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback message only exists without CUDA")
def test_no_deepspeed_cpu_chatter():
    code = ("from igpo_kit.rl.distributed import make_accelerator\nmake_accelerator()\n"
            "from deepspeed.accelerator import get_accelerator\nprint(get_accelerator().device_name())")
    env = {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "cpu"
    assert "Setting accelerator to CPU" not in r.stderr + r.stdout
