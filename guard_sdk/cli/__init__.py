"""The ``guard-sdk`` command: one module per command group (classify, export, train, augment, adapt,
evaluate, bench, android), the options they share defined once in ``options``, and ``main`` in ``main``.
Heavy subcommands import their packages only when they run."""

from guard_sdk.cli.main import build_parser, entry_point, main
from guard_sdk.cli.options import show_progress

__all__ = ["build_parser", "entry_point", "main", "show_progress"]
