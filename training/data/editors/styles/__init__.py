"""The editor styles, one module each.

Each module holds a style's ``draw_params``, its section ``program``
(the skeleton), its drawn choices and, but for ``mixed``, its persona's
choices, and exports the style as ``STYLE``.
"""
