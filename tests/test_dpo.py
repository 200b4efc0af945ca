"""ETO's DPO stage: preference pairs from hand-built trees, TRL's DPOTrainer on the tiny random model (the SFT
model as reference: the first loss is ln 2), agent-only completion masks, the merged model folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from trl.trainer.dpo_trainer import DataCollatorForPreference

from coursecorrect.config import validate_config
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.data.preferences import PreferencePair, read_preferences, write_preferences
from coursecorrect.data.tree import Node, Tree
from coursecorrect.errors import ConfigError, CourseCorrectError
from coursecorrect.llm.models import TINY_RANDOM, load_model_and_tokenizer, resolve_model
from coursecorrect.revision.pairs import PairConfig
from coursecorrect.revision.preferences import preference_pairs
from coursecorrect.train.dpo import (
    FULL_LR,
    LORA_LR,
    SUMMARY_FILE,
    AgentTurnsCollator,
    DPOStageConfig,
    agent_token_mask,
    train_dpo,
)
from coursecorrect.train.sft import TrainConfig, train_sft

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LN2 = math.log(2)
ROOT = [Message(role="user", content="Craft things."), Message(role="assistant", content="Ok."),
        Message(role="user", content="Goal: craft goal.")]


def _tree(task_id: int = 0) -> Tree:
    """    0 ─┬─ 1 get a ─┬─ 3 craft b ─── 5 craft goal   score 1.0  (good)
              │           └─ 4 jump                     score 0.0  (shares 1 step with 5)
              └─ 2 look                                 score 0.1  (shares no step with 5)
    """
    tree = Tree.new("walk", task_id, ROOT)

    def add(parent: Node, node_id: int, action: str, score: float | None = None) -> Node:
        node = Node(node_id, f"Thought: task {task_id}.\nAction: {action}", action, f"Got {node_id}.", parent.depth + 1)
        if score is not None:
            node.score, node.terminal, node.done = score, True, True
        return parent.add(node)

    one = add(tree.root, 1, "get a")
    add(tree.root, 2, "look", score=0.1)
    three = add(one, 3, "craft b")
    add(one, 4, "jump", score=0.0)
    add(three, 5, "craft goal", score=1.0)
    return tree


def _step(node_id: int, action: str, task_id: int = 0) -> list[Message]:
    return [Message(role="assistant", content=f"Thought: task {task_id}.\nAction: {action}", loss=True),
            Message(role="user", content=f"Got {node_id}.")]


# -- preference pairs ------------------------------------------------------------------------------------------


def test_preference_pairs_split_at_the_shared_prefix() -> None:
    pairs = sorted(preference_pairs([_tree()], PairConfig()), key=lambda p: p.meta["bad_node"])
    assert [(p.meta["bad_node"], p.meta["good_node"]) for p in pairs] == [(2, 5), (4, 5)]
    no_shared, one_shared = pairs

    assert no_shared.prompt == ROOT and no_shared.meta["divergence"] == 0
    assert no_shared.chosen == _step(1, "get a") + _step(3, "craft b") + _step(5, "craft goal")
    assert no_shared.rejected == _step(2, "look")

    # the shared step moves into the prompt, untrained; the continuations start after it
    assert one_shared.prompt == [*ROOT, *(m.model_copy(update={"loss": False}) for m in _step(1, "get a"))]
    assert not any(m.loss for m in one_shared.prompt)
    assert one_shared.chosen == _step(3, "craft b") + _step(5, "craft goal")
    assert one_shared.rejected == _step(4, "jump")
    assert one_shared.meta == {
        "env": "walk", "task_id": 0, "kind": "preference", "good_node": 5, "good_score": 1.0, "good_depth": 3,
        "bad_node": 4, "bad_score": 0.0, "bad_depth": 2, "divergence": 1,
    }
    assert one_shared.trl_record() == {
        "prompt": [{"role": m.role, "content": m.content} for m in one_shared.prompt],
        "chosen": [{"role": m.role, "content": m.content} for m in one_shared.chosen],
        "rejected": [{"role": m.role, "content": m.content} for m in one_shared.rejected],
    }
    # the pair rule and its cap apply as for revision data
    assert preference_pairs([_tree()], PairConfig(beta=0.05)) == [p for p in pairs if p.meta["bad_node"] == 4]
    assert len(preference_pairs([_tree(0), _tree(1)], PairConfig(max_pairs_per_tree=1))) == 2
    with pytest.raises(ValueError, match="start with an assistant"):
        PreferencePair(prompt=ROOT, chosen=_step(1, "a")[1:], rejected=_step(2, "b"))


def test_preferences_round_trip(tmp_path: Path) -> None:
    pairs = preference_pairs([_tree(0), _tree(1)], PairConfig())
    path = tmp_path / "prefs" / "pairs.jsonl"
    write_preferences(path, pairs)
    assert read_preferences(path) == pairs and len(path.read_text().splitlines()) == 4
    assert [p.name for p in path.parent.iterdir()] == ["pairs.jsonl"]  # atomic: no temp file left
    record = json.loads(path.read_text().splitlines()[0])
    record["chosen"][0]["role"] = "wizard"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(CourseCorrectError, match=r"pairs.jsonl: record 1: chosen\.0\.role"):
        read_preferences(path)
    assert read_preferences(path, skip_bad=True) == []


# -- which tokens DPO scores -----------------------------------------------------------------------------------


def _trl_tokens(tokenizer, record: dict, side: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, {side}_ids) as TRL 1.16 tokenizes a conversational record."""
    prompt = tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(record["prompt"] + record[side], tokenize=True, return_dict=True)["input_ids"]
    assert full[: len(prompt)] == prompt
    return prompt, full[len(prompt):]


def test_agent_mask_keeps_the_agent_turns_and_drops_observations() -> None:
    _, tokenizer = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    pair = min(preference_pairs([_tree()], PairConfig()), key=lambda p: p.meta["bad_node"])  # 3 chosen steps
    record = pair.trl_record()
    examples = []
    for _ in range(2):
        example = {}
        for side in ("chosen", "rejected"):
            example["prompt_ids"], example[f"{side}_ids"] = _trl_tokens(tokenizer, record, side)
            tokens = agent_token_mask(tokenizer, record["prompt"], record[side])
            example[f"{side}_agent_ids"], example[f"{side}_agent_mask"] = tokens["ids"], tokens["mask"]
        examples.append(example)
    batch = AgentTurnsCollator(pad_token_id=tokenizer.pad_token_id)(examples)
    plain = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(examples)  # TRL's own
    assert torch.equal(batch["input_ids"], plain["input_ids"])

    def scored(mask: torch.Tensor, row: int) -> str:
        return tokenizer.decode(batch["input_ids"][row][mask[row].bool()])

    agent = "".join(m.content + "<|im_end|>" for m in pair.chosen if m.role == "assistant")
    assert scored(batch["completion_mask"], 0) == agent  # row 0: chosen; rows 2, 3: rejected
    assert scored(batch["completion_mask"], 2) == pair.rejected[0].content + "<|im_end|>"
    # TRL alone scores everything after the prompt: observations, role headers and newlines included
    trl_scored = scored(plain["completion_mask"], 0)
    assert "<|im_start|>user\nGot 3.<|im_end|>" in trl_scored and trl_scored.startswith(pair.chosen[0].content)
    assert "Got" not in scored(batch["completion_mask"], 0)

    # truncation (keep_start) cuts the agent mask like TRL cuts the ids
    short = AgentTurnsCollator(pad_token_id=tokenizer.pad_token_id, max_length=len(examples[0]["prompt_ids"]) + 5)
    cut = short(examples)
    assert cut["completion_mask"].shape == cut["input_ids"].shape and cut["completion_mask"][0].sum() == 5

    examples[0]["chosen_ids"] = examples[0]["chosen_ids"][:-1]
    with pytest.raises(CourseCorrectError, match="mask_observations"):
        AgentTurnsCollator(pad_token_id=tokenizer.pad_token_id)(examples)


# -- training ---------------------------------------------------------------------------------------------------


TREES = [_tree(task) for task in range(2)]


@pytest.fixture(scope="module")
def pairs() -> list[PreferencePair]:
    return preference_pairs(TREES, PairConfig())


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """ETO's first stage: SFT of the tiny random model on the trees' good trajectories."""
    data = [Conversation(messages=tree.messages(tree.find(5))) for tree in TREES]
    config = TrainConfig(model=TINY_RANDOM, learning_rate=1e-3, max_steps=6, batch_size=4, warmup_ratio=0,
                         lr_scheduler="constant", logging_steps=1)
    return train_sft(config, data, tmp_path_factory.mktemp("sft"), progress=False)["model_path"]


def _logps(model, tokenizer, pairs: list[PreferencePair], agent_only: bool = True) -> torch.Tensor:
    """Per pair, log p(chosen) - log p(rejected) over the scored continuation tokens."""
    margins = []
    for pair in pairs:
        record, logps = pair.trl_record(), []
        for side in ("chosen", "rejected"):
            tokens = agent_token_mask(tokenizer, record["prompt"], record[side])
            ids = torch.tensor(tokens["ids"])
            if agent_only:
                mask = torch.tensor(tokens["mask"]).bool()
            else:
                prompt_ids, _ = _trl_tokens(tokenizer, record, side)
                mask = torch.arange(len(ids)) >= len(prompt_ids)
            with torch.no_grad():
                logits = model(ids[None]).logits[0, :-1].float()
            token_logps = F.log_softmax(logits, -1).gather(1, ids[1:, None])[:, 0]
            logps.append(token_logps[mask[1:]].sum())
        margins.append(logps[0] - logps[1])
    return torch.stack(margins)


def test_a_wrong_reference_would_show(sft_model: str, pairs: list[PreferencePair]) -> None:
    """The SFT model is far enough from its own base that a DPO run referencing the base would not start at ln 2:
    the ln 2 checks below do tell the SFT model apart as the reference."""
    sft, tokenizer = load_model_and_tokenizer(sft_model, dtype="float32", device="cpu")
    base, _ = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    delta = _logps(sft, tokenizer, pairs) - _logps(base, tokenizer, pairs)
    loss_if_base_were_reference = float(-F.logsigmoid(0.1 * delta).mean())
    assert abs(loss_if_base_were_reference - LN2) > 0.3


@pytest.mark.parametrize(("lora", "mask_observations"), [(True, True), (False, False)])
def test_dpo_trains_against_the_sft_model(
    tmp_path: Path, sft_model: str, pairs: list[PreferencePair], lora: bool, mask_observations: bool
) -> None:
    config = DPOStageConfig(lora=lora, mask_observations=mask_observations, learning_rate=5e-3 if lora else 5e-4,
                            batch_size=len(pairs), grad_accum=1, max_steps=6, logging_steps=1, warmup_ratio=0,
                            lr_scheduler="constant", max_length=512)
    summary = train_dpo(config, pairs, tmp_path, sft_model, progress=False)
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == summary
    assert summary["pairs"] == summary["pairs_trained"] == len(pairs) == 4 and summary["steps"] == 6
    assert not summary["skipped"] and summary["mode"] == ("lora" if lora else "full")
    # step 1's loss is computed before any update: policy == reference == the SFT model, so -log σ(0) = ln 2
    assert summary["train_loss_first"] == pytest.approx(LN2, abs=1e-4)
    assert summary["train_loss_last"] < summary["train_loss_first"] - 0.05
    assert summary["reward_accuracy_last"] == 1.0 and summary["reward_margin_last"] > 0

    folder = Path(summary["model_path"])
    assert folder == tmp_path / "model"
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILE, "model"]  # no temp folders or checkpoints
    assert (folder / "model.safetensors").is_file() and not (folder / "adapter_config.json").exists()
    trained, tokenizer = load_model_and_tokenizer(str(folder), dtype="float32", device="cpu")
    sft, sft_tokenizer = load_model_and_tokenizer(sft_model, dtype="float32", device="cpu")
    assert tokenizer.chat_template == sft_tokenizer.chat_template and trained.config.use_cache
    after, before = trained.state_dict(), sft.state_dict()
    assert after.keys() == before.keys()
    assert any(not torch.equal(after[k], before[k]) for k in after)
    # the saved (merged) model prefers the chosen continuations more than the SFT model does
    gain = _logps(trained, tokenizer, pairs, mask_observations) - _logps(sft, tokenizer, pairs, mask_observations)
    assert float(gain.mean()) > 0


def test_no_pairs_skips_and_points_at_the_sft_model(tmp_path: Path) -> None:
    summary = train_dpo(DPOStageConfig(), [], tmp_path / "dpo", TINY_RANDOM, progress=False)
    assert summary["skipped"] and summary["pairs"] == summary["steps"] == 0
    assert summary["model_path"] == str(resolve_model(TINY_RANDOM))
    assert sorted(p.name for p in (tmp_path / "dpo").iterdir()) == [SUMMARY_FILE]


def test_config() -> None:
    assert DPOStageConfig().beta == 0.1 and DPOStageConfig().peak_lr == LORA_LR
    assert DPOStageConfig(lora=False).peak_lr == FULL_LR and DPOStageConfig(learning_rate=0.5).peak_lr == 0.5
    with pytest.raises(ConfigError, match="betta: unknown field"):
        validate_config(DPOStageConfig, {"betta": 0.2})
    with pytest.raises(ConfigError, match="beta"):
        validate_config(DPOStageConfig, {"beta": 0})
