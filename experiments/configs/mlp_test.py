"""A tiny MLP and a short schedule for tests."""

import dataclasses

from experiments.configs import mlp_openl3


def get_config():
  return dataclasses.replace(mlp_openl3.get_config(), name="test",
                             hidden_units=(32, 16), learning_rates=(1e-3,),
                             weight_decays=(1e-5,), batch_size=16,
                             max_epochs=30, patience=5)
