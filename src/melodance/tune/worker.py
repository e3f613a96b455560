"""Entry point of one tuning worker process: ``python -m melodance.tune.worker SETUP_JSON INDEX``."""

from __future__ import annotations

import json
import sys

from melodance.tune.study import Setup, run_worker

if __name__ == "__main__":
    run_worker(Setup(**json.loads(sys.argv[1])), int(sys.argv[2]))
