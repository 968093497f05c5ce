"""Evasion: the disguises attackers wrap a harmful request in (``transforms``) and the suite that measures how a
guard holds up under each of them (``suite``, ``guard-sdk eval --suite evasion``)."""
