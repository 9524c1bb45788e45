"""editorbot: learns how a person edits music from (raw, edited) pairs and edits new songs the same way.

The code lives in four subpackages (``editorbot.engine``, ``editorbot.training``,
``editorbot.export``, ``editorbot.bridge``); in the repository they are the
top-level folders of the layout (docs/design.md section 1), linked here so that
one import package holds them and no other distribution's ``engine`` or
``export`` can shadow them. The bundled model (``models/default``) and the
Reaper scripts (``reaper_scripts``) are package data beside them.
"""

from importlib import metadata

try:
    __version__ = metadata.version("editorbot")
except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
    __version__ = "0+unknown"
