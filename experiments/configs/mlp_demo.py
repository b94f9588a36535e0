"""OpenL3's MLP without the hyperparameter search, for CPU runs: their
script's defaults when it does not search (learning rate 1e-4, weight decay
1e-5) and the 50 epochs of their job scripts; early stopping as theirs."""

import dataclasses

from experiments.configs import mlp_openl3


def get_config():
  return dataclasses.replace(mlp_openl3.get_config(), name="demo",
                             learning_rates=(1e-4,), weight_decays=(1e-5,),
                             max_epochs=50)
