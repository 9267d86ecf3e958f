import sys

from zdmkit.artifacts.cli import main

sys.exit(main())
