import sys

from hyperswitch.cli import main

sys.exit(main())
