import sys

from newsclf_cli import main

sys.exit(main())
