import sys

from lab4d_core.cli import main

sys.exit(main())
