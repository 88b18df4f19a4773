"""What every workflow script does first: parse its arguments, set threads, seed and logging."""
from __future__ import annotations

import argparse
import json
import logging
import random

from quantbench import repeated_warnings


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=json.loads, default={}, help="job parameters as JSON")
    p.add_argument("--threads", type=int, default=1)
    return p


def setup(args) -> dict:
    """Apply threads, seeds and logging; return the job parameters."""
    import numpy as np
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    repeated_warnings.install()
    torch.set_num_threads(max(1, args.threads))
    seed = int(args.params.get("seed", 0))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return args.params
