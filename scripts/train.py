"""Entry point for `accelerate launch`: the same as `p5rec train`, with the same arguments.

    accelerate launch scripts/train.py --config configs/beauty.yaml --out runs/beauty
    accelerate launch --multi_gpu --num_processes 4 scripts/train.py \
        --config configs/beauty.yaml --out runs/beauty train.batch_size=64
    accelerate launch scripts/train.py --config configs/beauty.yaml --out runs/beauty --resume

Two CPU processes: `accelerate launch --multi_gpu --num_processes 2 --num_machines 1
--mixed_precision no --dynamo_backend no scripts/train.py ...` (`--cpu --num_processes 2`
starts a single process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a source checkout works too

from p5rec.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
