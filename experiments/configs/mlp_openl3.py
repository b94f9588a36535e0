"""OpenL3's downstream MLP and schedule, as its code has it (marl/l3embedding
`classifier/train.py`, `06_train_classifier.py`): 512-128 ReLU, Adam,
batches of 64, at most 150 epochs with early stopping (patience 20) on the
validation fold, learning rate x weight decay searched on
{1e-5, 1e-4, 1e-3}^2. See `l3_tf.evaluation.transfer_mlp`."""

from l3_tf.evaluation import transfer_mlp


def get_config() -> transfer_mlp.MlpSettings:
  return transfer_mlp.MlpSettings(
      name="openl3", hidden_units=(512, 128),
      learning_rates=(1e-5, 1e-4, 1e-3), weight_decays=(1e-5, 1e-4, 1e-3),
      batch_size=64, max_epochs=150, patience=20)
