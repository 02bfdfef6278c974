"""One module per ``tek`` subcommand; each has ``register(subparsers)``.

A module's ``register`` adds its parser(s) and sets ``func`` (taking the parsed
``argparse.Namespace`` and returning the exit code) with ``set_defaults``.
Modules import heavy things inside ``func``, so ``tek --help`` stays fast.
"""
