import sys

from mnv4suite.cli import main

sys.exit(main())
