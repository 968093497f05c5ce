"""``python -m guard_sdk.cli``, the same as the ``guard-sdk`` script."""

from guard_sdk.cli.main import entry_point

entry_point()
