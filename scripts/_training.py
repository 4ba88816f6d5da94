"""What the training scripts share: seeded initialisation, the optimiser step with an EMA copy,
the learning-rate schedule and the progress line. Imported by ``scripts/train_*.py`` (run as
scripts, so this folder is on ``sys.path``)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch


def seeded_init(factory: Callable[[], Any], seed: int) -> Any:
    """``factory()`` with torch's default generator seeded by ``seed`` inside a fork: models
    (diffusers' among them) initialise from that generator and take no other, so this gives the
    same weights every run and leaves the caller's random state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return factory()


def lr_at(step: int, steps: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up then cosine decay to 1% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p)))


class Trainer:
    """AdamW (weight decay 1e-4) on ``net`` with gradient clipping at norm 1, the learning rate
    of :func:`lr_at`, and an exponential moving average ``ema`` of the weights whose decay ramps
    up as ``min(ema, (step + 1) / (step + 10))`` (what the bundled weights are)."""

    def __init__(self, net: torch.nn.Module, steps: int, lr: float, ema: float) -> None:
        self.net, self.steps, self.lr, self.decay = net, steps, lr, ema
        self.ema = copy.deepcopy(net).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        self.running = 0.0
        self.t0 = time.time()

    def step(self, step: int, loss: torch.Tensor) -> None:
        """Back-propagate ``loss``, update the weights and their average, print progress."""
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step, self.steps, self.lr)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():
            decay = min(self.decay, (step + 1) / (step + 10))
            for pe, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        self.running = 0.98 * self.running + 0.02 * loss.item() if step else loss.item()
        if step % 50 == 0 or step == self.steps - 1:
            el = time.time() - self.t0
            print(f"step {step:5d}  loss {self.running:.4f}  {el:7.1f}s  "
                  f"eta {el / (step + 1) * (self.steps - step - 1):6.0f}s", flush=True)
