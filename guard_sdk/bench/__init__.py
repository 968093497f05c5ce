"""Benchmarks of guard bundles on the machine at hand: latency, memory, load time, size (`guard-sdk bench`).

Each configuration runs in its own process (``worker``), so one's memory and thread pools never touch the
next's; ``stats`` turns timings into the figures the on-device field reports. Runtime-light: numpy and the
standard library only.
"""
