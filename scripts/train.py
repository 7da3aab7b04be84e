"""Entry point for `accelerate launch`: the same as `p5rec train`.

    accelerate launch scripts/train.py --out runs/x --data data/beauty train.epochs=5
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no scripts/train.py --out runs/x
"""

import sys

from p5rec.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
