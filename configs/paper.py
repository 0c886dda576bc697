"""The paper's protocol: train on SPH, select on SPH validation, evaluate
cross-dataset on all of PTB and all of PTB-XL (plus SPH test), per lead set.

    python launch.py --config=configs/paper.py --config.leads=inferior \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/paper_inferior
    python launch.py --config=configs/paper.py --config.leads=II,III,aVF ...

Lead sets by name: chest, limb, all12, inferior, lateral, I-II-V3, V1-V3-V5.
All 7 sets x 3 seeds in one command, with a mean ± std table: configs/protocol.py.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.train_dataset = "sph_mi/paper"
    c.val_split = "validation"
    c.batch_size = 32
    c.input_mode = "auto"  # device-resident when the split fits, else grain
    c.num_epochs = 25
    c.eval_targets = "ptbdb_mi/paper:all,ptbxl_mi/paper:all,sph_mi/paper:test"
    return c
