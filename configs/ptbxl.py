"""In-distribution PTB-XL: train on strat_fold 1-8, select on 9, test on 10.

    python launch.py --config=configs/ptbxl.py --config.leads=all12 \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/ptbxl_all12
"""

from configs import default


def get_config():
    c = default.get_config()
    c.train_dataset = "ptbxl_mi/paper"
    c.val_split = "validation"
    c.eval_targets = "ptbxl_mi/paper:test"
    return c
