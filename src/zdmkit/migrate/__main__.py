import sys

from zdmkit.migrate.cli import main

sys.exit(main())
