"""Two CPU processes under DDP (gloo) give the same metric values as one process."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_metrics.py")

pytestmark = pytest.mark.slow  # two DDP processes


@pytest.mark.xdist_group("subprocess")
def test_two_process_ddp_metrics_equal_one_process():
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    single, ddp = result["single"], result["ddp"]
    assert single.keys() == ddp.keys()
    for key, value in single.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(ddp[key]), key
        else:
            assert torch.allclose(torch.tensor(value), torch.tensor(ddp[key]), atol=1e-5), key
