"""`python -m voxelmetrics.cli` is the `voxelmetrics` command too."""

import sys

from voxelmetrics.cli import main

sys.exit(main())
