"""PInv (PINNacle's Poisson inverse problem): NMM + Gauss–Newton beside a PINN on the same data,
with compile time apart from run time. The case itself is ``experiments.inverse.pinv`` (also run
by ``python -m experiments inverse --problem pinv``); this script runs it for several seeds and
network settings.

Usage::

    python benchmarks/inverse_pinv.py                       # seed 0, PINN 64 × 3, 5 000 steps
    python benchmarks/inverse_pinv.py --width 100 --depth 5 --steps 20000   # PINNacle's network
    python benchmarks/inverse_pinv.py --steps 0 --seeds 0 1 2           # NMM only
"""

from __future__ import annotations

import argparse
import json

from experiments import inverse


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000, help="PINN Adam steps (0: NMM only)")
    args = ap.parse_args()
    for seed in args.seeds:
        r = inverse.pinv(seed, pinn_steps=args.steps, width=args.width, depth=args.depth)
        print(inverse.report({"pinv": r}))
        print(json.dumps(r, default=float))


if __name__ == "__main__":
    main()
