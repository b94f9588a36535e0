"""Supervised baselines at the paper's scale (Kinetics-Sounds, 16 GPUs).

The paper gives no schedule for them; these are our choices, matched to
L3-Net's: Adam 1e-4, 16 examples per replica (256 on 16 GPUs), and enough
steps for ~15k training clips to be seen many times over.
"""

from l3_tf.evaluation import baselines


def get_config() -> baselines.BaselinesConfig:
  return baselines.BaselinesConfig(
      name="paper",
      classifier=baselines.ClassifierConfig(
          hidden_units=128, batch_size_per_replica=16, learning_rate=1e-4,
          num_steps=30000, checkpoint_every_steps=1000, log_every_steps=100,
          eval_num_examples=2000),
      head_num_steps=30000, head_learning_rate=1e-4,
      threshold_split="validation")
