"""The training loop shared by one model and a population of models.

:func:`run_loop` dispatches ``k`` steps at a time through a feed (see
:mod:`leadmix_jax.train.feeds`), ends dispatches exactly at validation and
checkpoint steps, logs, checks the loss for NaN/Inf one dispatch late (so the
device never waits on the host) and turns Ctrl-C into a stop between
dispatches. What a step is and what a checkpoint holds are the caller's.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np
from absl import logging

from leadmix_jax.train import feeds, metric_writers


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``step`` is the last step completed."""

    def __init__(self, step: int):
        super().__init__(f"interrupted at step {step}; run the same command again to resume")
        self.step = step


class StopRequest:
    """Ctrl-C (SIGINT) during training as a request to stop at the next
    dispatch boundary, so that it never lands inside a library call: one
    that arrived while Orbax was saving a checkpoint was swallowed and the run
    went on. A second Ctrl-C interrupts at once. Only the main thread can
    install a signal handler; elsewhere this does nothing."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del signum, frame
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def say(text: str) -> None:
    """A progress line on process 0 (stdout: silent phases must show)."""
    if jax.process_index() == 0:
        print(text, flush=True)


def run_loop(config, exp, feed, state, start: int, workdir: str, *, validate, save) -> dict:
    """Trains ``state`` from step ``start`` to ``exp.total_steps`` through ``feed``.

    Shared by one model and a population (:mod:`leadmix_jax.train.population`).
    Dispatches end exactly at validation and checkpoint steps; at those,
    ``validate(state) -> dict`` (None: no validation) gives flat scalars for
    ``metrics.jsonl`` and ``save(step, state, val)`` starts a checkpoint.
    Losses may be ``(k,)`` or ``(k, P)`` (one per member); the logged loss is
    their mean. Ctrl-C raises :class:`Interrupted` after the pending
    checkpoint is written. Returns the last logged metrics and validation.
    """
    is_chief = jax.process_index() == 0
    # steps after the restored one are redone: their old records are dropped
    writer = metric_writers.MetricWriter(workdir, enabled=is_chief, resume_step=start)
    progress = metric_writers.Progress(exp.total_steps, config.batch_size, start)
    eval_every = config.eval_every_steps if config.eval_every_steps > 0 else exp.steps_per_epoch
    ckpt_every = config.checkpoint_every_steps if config.checkpoint_every_steps > 0 else exp.steps_per_epoch
    last: dict = {}
    pending = None  # previous dispatch's metrics, checked one dispatch late to keep the device busy
    if start < exp.total_steps:
        say(f"compiling the train step; training steps {start + 1}-{exp.total_steps}")
    step = start
    try:
        with StopRequest() as stop:
            while step < exp.total_steps:
                if stop.requested:  # Ctrl-C: stop here, between dispatches
                    raise KeyboardInterrupt
                # Dispatches end exactly at validation / checkpoint steps (feeds.py).
                k = feeds.dispatch_length(
                    step,
                    exp.total_steps,
                    config.steps_per_dispatch,
                    (eval_every if validate is not None else 0, ckpt_every),
                )
                state, metrics = feed.run(state, k)  # metrics: (k,) or (k, P) per step
                step += k
                if pending is not None:
                    check_finite(*pending)
                pending = (step, metrics)
                do_val = validate is not None and (step % eval_every == 0 or step == exp.total_steps)
                do_ckpt = step % ckpt_every == 0 or step == exp.total_steps
                if do_val or do_ckpt:
                    check_finite(*pending)  # never save or validate a non-finite state
                record = {}  # one metrics.jsonl record per step: training and validation scalars
                # the first dispatch is logged too: it shows the run is alive after compilation
                if (
                    feeds.crossed(step - k, step, config.log_every_steps)
                    or step == exp.total_steps
                    or step - k == start
                ):
                    check_finite(*pending)
                    last = {name: float(np.mean(v[-1])) for name, v in metrics.items()}
                    last["samples_per_s"] = progress.rate(step)
                    last["data_wait_s"] = feed.wait_s
                    record.update(last)
                    if is_chief:
                        logging.info(progress.line(step, last["loss"], first=step - k == start))
                    feed.wait_s = 0.0
                val = None
                if do_val:
                    val = validate(state)
                    record.update(val)
                    last.update(val)
                    progress.reset(step)
                if step - k == start:
                    progress.start(step)  # the rate and ETA come from timed steps, not the compilation
                if record:
                    writer.write(step, record)
                if do_ckpt:
                    save(step, state, val)
            if pending is not None:
                check_finite(*pending)
    except KeyboardInterrupt:
        writer.close()
        raise Interrupted(step) from None
    writer.close()
    return last


def check_finite(last_step: int, metrics: dict) -> None:
    """Raises at the first non-finite loss of a dispatch ending at ``last_step``
    (``metrics["loss"]``: ``(k,)`` one per step, ``(k, P)`` one per step and
    member, or a scalar)."""
    losses = np.asarray(metrics["loss"])
    losses = losses.reshape(losses.shape[0] if losses.ndim else 1, -1)
    bad = np.flatnonzero(~np.isfinite(losses).all(axis=1))
    if bad.size:
        i = int(bad[0])
        value = losses[i][~np.isfinite(losses[i])][0]
        raise NonFiniteLossError(
            f"training loss became {value} at step {last_step - len(losses) + 1 + i}: check the input data for NaN/Inf or "
            "lower the learning rate; the last saved checkpoint is intact"
        )
