"""Model resolution, cached builds, and the generation-marked chat template."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from coursecorrect.errors import BackendError
from coursecorrect.llm import models
from coursecorrect.llm.models import (
    CHATML_GENERATION_TEMPLATE,
    SMOLLM2,
    TINY_RANDOM,
    build_tiny_random,
    cpu_has_bf16,
    load_model_and_tokenizer,
    resolve_dtype,
    resolve_model,
)

# SmolLM2-135M-Instruct's own chat template, as stored in the bundled GGUF (checked by a slow test below).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "craft 3 sticks"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    [
        {"role": "user", "content": "Task: get oak planks"},
        {"role": "assistant", "content": "Thought: I need logs.\nAction: get 1 oak log"},
        {"role": "user", "content": "Observation: Got 1 oak log"},
        {"role": "assistant", "content": "Action: craft 4 oak planks using 1 oak log"},
    ],
    [
        {"role": "system", "content": "You craft things."},
        {"role": "user", "content": "What is 12+30?"},
        {"role": "assistant", "content": " 42 "},
        {"role": "user", "content": ""},
    ],
]


def _hashes(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COURSECORRECT_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return load_model_and_tokenizer(TINY_RANDOM, device="cpu")[1]


def test_tiny_random_is_built_deterministically(tmp_path: Path) -> None:
    build_tiny_random(tmp_path / "a")
    build_tiny_random(tmp_path / "b")
    # Another process too: the tokenizer trainer and torch's RNG must not depend on per-process state.
    code = "import sys; from pathlib import Path; from coursecorrect.llm.models import build_tiny_random as b; "
    subprocess.run([sys.executable, "-c", code + "b(Path(sys.argv[1]))", str(tmp_path / "c")], check=True)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b") == _hashes(tmp_path / "c")


def test_tiny_random_shape(tmp_cache: Path) -> None:
    model, tokenizer = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    n_params = sum(p.numel() for p in model.parameters())
    assert 4e6 < n_params < 6e6
    assert model.config.vocab_size == 4096 and model.config.tie_word_embeddings
    assert len(tokenizer) <= 4096
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.padding_side == "left"
    assert model.dtype == torch.float32


def test_resolve_caches_the_build(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def slow_build(out: Path) -> None:
        calls.append(out)
        time.sleep(0.3)  # long enough for the other thread to wait on the lock
        (out / "config.json").write_text("{}")

    monkeypatch.setitem(models._BUILDERS, TINY_RANDOM, (slow_build, 1))
    threads = [threading.Thread(target=resolve_model, args=(TINY_RANDOM,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert resolve_model(TINY_RANDOM) == tmp_cache / "models" / TINY_RANDOM
    assert len(calls) == 1
    assert sorted(p.name for p in (tmp_cache / "models").iterdir()) == [f".{TINY_RANDOM}.lock", TINY_RANDOM]


def test_stale_build_is_replaced(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = resolve_model(TINY_RANDOM)
    builder, version = models._BUILDERS[TINY_RANDOM]
    monkeypatch.setitem(models._BUILDERS, TINY_RANDOM, (builder, version + 1))
    assert not models._is_current(folder, version + 1)
    assert resolve_model(TINY_RANDOM) == folder
    assert models._is_current(folder, version + 1)


def test_resolve_paths_and_hub_ids(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == tmp_path
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(BackendError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(BackendError, match="Did you mean 'smollm2-135m-instruct'"):
        resolve_model("smollm2-135m")
    with pytest.raises(BackendError, match="unknown dtype"):
        load_model_and_tokenizer(TINY_RANDOM, dtype="float8")


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_template_renders_like_smollm2(tiny_tokenizer, conversation, add_generation_prompt: bool) -> None:
    def render(template: str) -> str:
        return tiny_tokenizer.apply_chat_template(
            conversation, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    assert render(CHATML_GENERATION_TEMPLATE) == render(SMOLLM2_TEMPLATE)


def _assert_mask_covers_assistant_turns(tokenizer, conversation) -> None:
    out = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    spans, current = [], []
    for token, m in zip(ids, mask, strict=True):
        if m:
            current.append(token)
        elif current:
            spans, current = [*spans, current], []
    if current:
        spans.append(current)
    expected = [m["content"] + "<|im_end|>" for m in conversation if m["role"] == "assistant"]
    assert [tokenizer.decode(s) for s in spans] == expected


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_generation_mask_tiny(tiny_tokenizer, conversation) -> None:
    _assert_mask_covers_assistant_turns(tiny_tokenizer, conversation)


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The converted SmolLM2, shared through the default cache (converting takes ~20 s once)."""
    return resolve_model(SMOLLM2)


@pytest.mark.slow
def test_smollm2_conversion(smollm2_folder: Path) -> None:
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    gguf = models.smollm2_gguf_path()
    assert GGUFReader(gguf).fields["tokenizer.chat_template"].contents() == SMOLLM2_TEMPLATE
    model, tokenizer = load_model_and_tokenizer(SMOLLM2, dtype="bfloat16", device="cpu")
    assert abs(sum(p.numel() for p in model.parameters()) - 134.5e6) < 1e6
    assert tokenizer.chat_template == CHATML_GENERATION_TEMPLATE
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 2
    original = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    for conversation in CONVERSATIONS:
        text = original.apply_chat_template(conversation, tokenize=False)
        assert tokenizer.apply_chat_template(conversation, tokenize=False) == text
        assert tokenizer(text)["input_ids"] == original(text)["input_ids"]
        _assert_mask_covers_assistant_turns(tokenizer, conversation)


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_tile\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma amx_bf16\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n", False),  # AVX-512 without BF16
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", True),  # Arm
        ("processor\t: 0\nmodel name\t: bf16 in the name only\nflags\t\t: fpu avx2\n", False),
        ("", False),
    ],
)
def test_cpu_has_bf16_reads_the_cpu_flags(cpuinfo: str, expected: bool) -> None:
    assert cpu_has_bf16(cpuinfo) is expected


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_on_a_cpu_without_native_bf16_warns(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: native)
    assert resolve_dtype("auto", "cpu") == torch.float32
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert any("no native bfloat16" in str(w.message) for w in caught) is (not native)
