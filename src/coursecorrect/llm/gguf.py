"""Hugging Face model folder → GGUF file, with llama.cpp's own converter, cached by the weights' content.

llama.cpp's ``convert_hf_to_gguf.py`` is not installed by any wheel; the llama-cpp-python sdist vendors it.
On first use it is taken from that sdist (``pip download`` of the installed llama-cpp-python version, kept
under ``$COURSECORRECT_CACHE/llama.cpp-VERSION``), unless ``$COURSECORRECT_GGUF_CONVERTER`` names a
``convert_hf_to_gguf.py`` of a llama.cpp checkout. The converter needs ``sentencepiece`` (the ``server`` extra).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from coursecorrect.errors import BackendError
from coursecorrect.llm.models import cache_dir, file_lock

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
_DEFAULT_LLAMA_CPP_PYTHON = "0.3.36"  # the version of the 'server' extra
_CONVERTER = "convert_hf_to_gguf.py"


def weights_digest(folder: Path) -> str:
    """SHA-256 over a model folder's weight files (``*.safetensors``, ``*.bin``, ``*.gguf``), in name order."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    if not files:
        raise BackendError(f"{folder}: no weight files (*.safetensors, *.bin, *.gguf)")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def to_gguf(folder: Path, digest: str, gguf_type: str = "q8_0") -> Path:
    """The GGUF file of the model in ``folder``, whose :func:`weights_digest` is ``digest`` (converted on first
    use, then reused while the weights are the same: the file is named by their digest)."""
    if gguf_type not in GGUF_TYPES:
        raise BackendError(f"unknown GGUF type {gguf_type!r}; choose one of {', '.join(GGUF_TYPES)}")
    out_dir = cache_dir() / "gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{digest[:24]}-{gguf_type}.gguf"
    with file_lock(out.with_suffix(".lock")):
        if not out.is_file():
            _convert(folder, out, gguf_type)
    return out


def _convert(folder: Path, out: Path, gguf_type: str) -> None:
    script = converter()
    path = os.pathsep.join(filter(None, [str(script.parent / "gguf-py"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        partial = Path(tmp) / out.name
        command = [sys.executable, str(script), str(folder), "--outfile", str(partial), "--outtype", gguf_type]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise BackendError(f"llama.cpp's converter could not convert {folder} to GGUF: {tail}")
        partial.replace(out)


def converter() -> Path:
    """``convert_hf_to_gguf.py``: ``$COURSECORRECT_GGUF_CONVERTER``, or the one of the llama-cpp-python sdist."""
    given = os.environ.get("COURSECORRECT_GGUF_CONVERTER")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise BackendError(f"COURSECORRECT_GGUF_CONVERTER={given}: no such file")
        return path
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = _DEFAULT_LLAMA_CPP_PYTHON
    root = cache_dir() / f"llama.cpp-{version}"
    with file_lock(root.parent / f"{root.name}.lock"):
        if not (root / _CONVERTER).is_file():
            _fetch_converter(version, root)
    return root / _CONVERTER


def _fetch_converter(version: str, root: Path) -> None:
    """Unpack the converter (and the ``gguf-py`` and ``conversion`` packages it imports) from the sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"llama-cpp-python=={version}", "--dest", tmp]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise BackendError(
                f"cannot fetch llama.cpp's GGUF converter (the llama-cpp-python {version} sdist from PyPI): "
                f"{' '.join(result.stderr.split())[-300:]}; or set COURSECORRECT_GGUF_CONVERTER to a "
                f"llama.cpp checkout's {_CONVERTER}"
            )
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=root.name + "."))
        with tarfile.open(sdists[0]) as sdist:
            members = [
                m for m in sdist.getmembers()
                if m.isfile() and (m.name == prefix + _CONVERTER or m.name.startswith(
                    (prefix + "gguf-py/gguf/", prefix + "conversion/")))
            ]  # fmt: skip
            for member in members:
                member.name = member.name[len(prefix) :]
            sdist.extractall(staging, members=members, filter="data")
        shutil.rmtree(root, ignore_errors=True)  # a partial copy of an earlier, interrupted fetch
        staging.replace(root)
