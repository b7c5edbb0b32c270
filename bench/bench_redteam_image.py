"""Image watermark red team (``bench_redteam.py --part image``): every image attack and the averaging attack.

.venv/bin/python bench/bench_redteam_image.py [--images 200 --averaging 10,100,1000 --averaging-trials 20]
"""

from __future__ import annotations

import sys

import bench_redteam

if __name__ == "__main__":
    sys.argv[1:1] = ["--part", "image"]
    bench_redteam.main()
