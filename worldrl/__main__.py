import sys

from worldrl.cli import main

sys.exit(main())
