import sys

from zdmkit.report import main

sys.exit(main())
