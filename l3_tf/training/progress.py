"""A progress bar over training steps: step n / N, pairs/s, loss and ETA.

For a person at a terminal (`make demo`); the absl log lines every
`train.log_every_steps` stay for logs and TensorBoard. By default the bar
shows only when stderr is a terminal (tqdm's `disable=None`), so batch jobs
and test logs are not filled with carriage returns.
"""

import sys

import tqdm


class StepProgress:
  """`tqdm` over the steps of one training run.

  Args:
    total_steps: the run's last step (`train.num_steps`).
    start_step: the step it starts (or resumes) at.
    pairs_per_step: the global batch size.
    enabled: False: no bar (non-chief workers); None: only on a terminal.
    file: where the bar is drawn (default stderr).
  """

  def __init__(self, total_steps: int, start_step: int, pairs_per_step: int,
               enabled: bool | None = None, file=None):
    if pairs_per_step <= 0:
      raise ValueError(f"pairs_per_step={pairs_per_step} must be > 0")
    self.pairs_per_step = pairs_per_step
    self._step = start_step
    self._rate = None  # pairs/s, exponentially smoothed as tqdm smooths
    self._loss = None  # the last one given
    self._bar = tqdm.tqdm(
        total=total_steps, initial=start_step, unit="step", desc="train",
        dynamic_ncols=True, file=file or sys.stderr,
        disable=None if enabled is None else not enabled,
        bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}"
                   "{postfix}")

  @property
  def disabled(self) -> bool:
    return self._bar.disable

  def update(self, step: int, seconds: float, loss: float | None = None):
    """Advances to `step`; `seconds` is what the last step took."""
    postfix = []
    if seconds > 0:
      rate = self.pairs_per_step * (step - self._step) / seconds
      self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
      postfix.append(f"{self._rate:.1f} pairs/s")
    self._loss = self._loss if loss is None else loss
    if self._loss is not None:
      postfix.append(f"loss {self._loss:.3f}")
    if postfix:
      self._bar.set_postfix_str(", ".join(postfix), refresh=False)
    self._bar.update(step - self._step)
    self._step = step

  def close(self):
    self._bar.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
