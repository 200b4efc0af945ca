"""SFT of agents on conversations: only ``loss=True`` assistant turns are trained, each example weighted.

- :mod:`.tokenize` — :func:`~.tokenize.tokenize_conversation(s)`: token ids and loss labels.
- :mod:`.collate` — padded or packed batches (:class:`~.collate.SFTCollator`, :func:`~.collate.pack_examples`)
  and the weighted loss (:func:`~.collate.weighted_nll`).
- :mod:`.sft` — :class:`~.sft.TrainConfig` and :func:`~.sft.train_sft` (transformers Trainer, LoRA via PEFT,
  a merged model folder at the end); :mod:`.cli` — the ``train`` command.
- :mod:`.finite` — divergence guards: a non-finite loss stops training with :class:`~.finite.TrainingError`,
  and non-finite weights are never saved.

The submodules are not imported here: the CLI loads torch and transformers only when it trains.
"""
