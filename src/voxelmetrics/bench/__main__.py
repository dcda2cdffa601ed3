"""`python -m voxelmetrics.bench`: the driver, and the worker processes it spawns."""

import sys

from voxelmetrics.bench.command import main

sys.exit(main(sys.argv[1:]))
