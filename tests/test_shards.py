"""Resumable shards: a run killed mid-way and run again loses and repeats no row."""

import signal
import subprocess
import sys
import time

import pytest

from guard_sdk.training.shards import ShardWriter, read_shards

STAGE = """
import sys, time
from guard_sdk.training.shards import ShardWriter
with ShardWriter(sys.argv[1], shard_rows=7) as out:
    for key in out.todo(range(60)):
        time.sleep(float(sys.argv[2]))
        out.add({"id": key, "text": f"row {key}", "score": key / 60})
"""


def test_a_killed_run_resumes_with_no_row_lost_or_repeated(tmp_path):
    folder = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", STAGE, str(folder), "0.02"])
    try:
        deadline = time.time() + 120
        while len(list(folder.glob("shard-*.parquet"))) < 3 and time.time() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)  # no chance to flush: the open shard's rows are lost to this run
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    killed_at = len(ShardWriter(folder, 7).done)
    assert 21 <= killed_at < 60 and killed_at % 7 == 0
    subprocess.run([sys.executable, "-c", STAGE, str(folder), "0"], check=True, timeout=120)
    rows = read_shards(folder)
    assert rows["id"] == list(range(60))
    assert rows["text"] == [f"row {i}" for i in range(60)]


def test_rows_are_written_once_and_a_partial_shard_on_exit(tmp_path):
    with ShardWriter(tmp_path, shard_rows=4) as out:
        for key in range(6):
            out.add({"id": key})
        with pytest.raises(ValueError, match="id=3 is already written"):
            out.add({"id": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.parquet", "shard-00001.parquet"]
    (tmp_path / "shard-00002.tmp").write_bytes(b"half a shard")
    again = ShardWriter(tmp_path, shard_rows=4)
    assert again.todo(range(8)) == [6, 7] and not (tmp_path / "shard-00002.tmp").exists()
    with pytest.raises(FileNotFoundError, match="no shard"):
        read_shards(tmp_path / "empty")
