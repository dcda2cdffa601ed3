"""`python -m voxelmetrics` is the `voxelmetrics` command."""

import sys

from voxelmetrics.cli import main

sys.exit(main())
