import sys

from p5rec.cli import main

sys.exit(main())
