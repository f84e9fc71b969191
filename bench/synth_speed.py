"""Images per second of `maskctl.data.synth` at the real size (384 x 512) on one CPU core.

Run: python bench/synth_speed.py [--people 29]   (29 people x 7 = 203 images, no eval set)
"""
from __future__ import annotations

import argparse
import os
import tempfile

from maskctl.data.synth import synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=29)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--height", type=int, default=512)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # pin to one core: the claim is single-core speed
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        summary = synthesize(tmp + "/synth", people=args.people, eval_people=0,
                             width=args.width, height=args.height, show_progress=False)
    print(f"{summary.train_images} images at {args.width}x{args.height} in {summary.seconds:.2f} s: "
          f"{summary.train_images / summary.seconds:.0f} images/s on one core")


if __name__ == "__main__":
    main()
