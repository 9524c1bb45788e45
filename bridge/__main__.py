import sys

from editorbot.bridge.cli import main

sys.exit(main())
