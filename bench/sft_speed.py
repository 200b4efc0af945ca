"""SFT training throughput: coursecorrect's ``train_sft`` vs plain ``trl.SFTTrainer`` on the same data.

Both train the same model with the same LoRA settings, batch size, number of steps, learning rate and
length-grouped sampling on the same gold TextCraft conversations (the expert's plan, as Thought/Action
turns; every assistant turn trained, so both supervise the same tokens), in float32 without gradient
checkpointing (TRL's default turns it on; it is turned off here so both run the same computation).
Throughput counts the tokens each trainer actually fed through its steps, over the time of the training
loop only (not loading, tokenizing or saving). Target: ours / TRL >= 1.0x.

    python bench/sft_speed.py --model tiny-random            # a quick check
    OMP_NUM_THREADS=2 python bench/sft_speed.py --steps 4     # SmolLM2-135M
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset, disable_progress_bars
from peft import LoraConfig
from transformers import PrinterCallback
from trl import SFTConfig, SFTTrainer

from coursecorrect.agent.prompt import episode_start
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.envs import make_env
from coursecorrect.llm.models import load_model_and_tokenizer
from coursecorrect.train.sft import TrainConfig, train_sft
from coursecorrect.train.tokenize import tokenize_conversations


def gold_conversations(count: int, min_tokens: int, tokenizer) -> list[Conversation]:
    """Expert TextCraft episodes of at least ``min_tokens`` tokens, every assistant turn trained."""
    env = make_env("textcraft")
    out = []
    with env:
        for task in env.task_ids("train"):
            messages = episode_start(env.instruction, env.reset(task))
            messages[1] = Message(role="assistant", content=messages[1].content, loss=True)
            for action in env.expert_actions():
                thought = f"Thought: I should {action.split(' using ')[0]} next."
                messages.append(Message(role="assistant", content=f"{thought}\nAction: {action}", loss=True))
                messages.append(Message(role="user", content=env.step(action).observation))
            conversation = Conversation(messages=messages)
            if len(tokenizer.apply_chat_template(conversation.chat(), tokenize=False)) // 4 < min_tokens:
                continue  # a quick length filter; exact counts below
            out.append(conversation)
            if len(out) == count:
                return out
    raise SystemExit(f"only {len(out)} TextCraft tasks give episodes of >= {min_tokens} tokens")


class CountingSFTTrainer(SFTTrainer):
    """TRL's trainer, counting the tokens of the batches it trains on (counting in the collator would also
    count the batch that accelerate's dataloader fetches ahead)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tokens = self.supervised = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.tokens += int(inputs["attention_mask"].sum())
        self.supervised += int((inputs["labels"][:, 1:] != -100).sum())
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def run_trl(args, conversations: list[Conversation], out: Path) -> dict[str, float]:
    model, tokenizer = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    tokenizer.padding_side = "right"
    disable_progress_bars()
    dataset = Dataset.from_list([{"messages": c.chat()} for c in conversations])
    config = SFTConfig(
        output_dir=str(out), assistant_only_loss=True, max_length=args.max_length, packing=False,
        per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-4,
        lr_scheduler_type="cosine", warmup_steps=0.03, train_sampling_strategy="group_by_length",
        gradient_checkpointing=False, bf16=False, save_strategy="no", report_to="none", logging_steps=1,
        disable_tqdm=True, seed=0, use_cpu=True,
    )
    lora = LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
    trainer = CountingSFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": seconds, "tokens": trainer.tokens, "supervised": trainer.supervised, "first": losses[0],
            "last": losses[-1]}


def run_ours(args, conversations: list[Conversation], out: Path) -> dict[str, float]:
    config = TrainConfig(
        model=args.model, lora=True, lora_r=16, lora_alpha=32, max_length=args.max_length,
        batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-4, dtype="float32",
    )
    summary = train_sft(config, conversations, out, progress=False)
    return {"seconds": summary["train_seconds"], "tokens": summary["tokens_trained"],
            "supervised": summary["supervised_tokens_trained"], "first": summary["train_loss_first"],
            "last": summary["train_loss_last"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model alias, folder or hub id")
    parser.add_argument("--conversations", type=int, default=32, help="gold TextCraft conversations")
    parser.add_argument("--min-tokens", type=int, default=600, help="shortest conversation (approximate tokens)")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per step")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of each trainer")
    parser.add_argument("--max-length", type=int, default=2048, help="tokens per example")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _, tokenizer = load_model_and_tokenizer(args.model, device="cpu")
    conversations = gold_conversations(args.conversations, args.min_tokens, tokenizer)
    _, stats = tokenize_conversations(tokenizer, conversations, args.max_length)
    print(f"{args.model} (float32, {torch.get_num_threads()} threads), LoRA r16 all-linear: {stats.examples} gold "
          f"TextCraft conversations, {stats.total_tokens / stats.examples:.0f} tokens on average "
          f"({stats.supervised_tokens / stats.total_tokens:.1%} supervised), batch {args.batch_size}, "
          f"{args.steps} steps")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("trl", run_trl), ("ours", run_ours)):
            r = results[name] = run(args, conversations, Path(tmp) / name)
            print(f"{name:>4}: {r['seconds']:7.1f} s  {r['tokens'] / r['seconds']:7.1f} tokens/s  "
                  f"{r['supervised'] / r['seconds']:6.1f} supervised tokens/s  ({r['tokens']} tokens, "
                  f"{r['supervised']} supervised; loss {r['first']:.3f} -> {r['last']:.3f})")
    ours, trl = results["ours"], results["trl"]
    print(f"ours / TRL: {ours['tokens'] / ours['seconds'] / (trl['tokens'] / trl['seconds']):.2f}x tokens/s, "
          f"{ours['supervised'] / ours['seconds'] / (trl['supervised'] / trl['seconds']):.2f}x supervised tokens/s")


if __name__ == "__main__":
    main()
