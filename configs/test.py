"""A tiny, fast configuration for CPU tests (datasets built from dummy data).

    python launch.py --config=configs/test.py --workdir=/tmp/leadmix_test \
        --config.data_dir=<built dummy datasets>
"""

from configs import default


def get_config():
    c = default.get_config()
    c.model.base = 8
    c.model.depth = 1
    c.model.heads = 2
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_epochs = 1
    c.num_train_steps = 6
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 2
    c.workers = 0
    # The tests of the grain path keep one step per dispatch; tests of device
    # mode and of several steps per dispatch set these.
    c.input_mode = "grain"
    c.steps_per_dispatch = 1
    c.norm_max_examples = 256
    c.bootstrap_samples = 50
    return c
