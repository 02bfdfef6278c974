"""tek's front ends: the ``tek`` command line and the Textual console.

Kept cheap to import: the console (``tek_tui.app``) loads only for ``tek tui``.
"""
