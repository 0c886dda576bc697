"""In-distribution PTB-XL: train on strat_fold 1-8, select on 9, test on 10.

    python launch.py --config=configs/ptbxl.py --config.leads=all12 \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/ptbxl_all12

On the 100 Hz records (``tfds build datasets/ptbxl_mi --config=paper_100hz``):

    python launch.py --config=configs/ptbxl.py:100hz --config.leads=all12 \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/ptbxl100_all12

The same data for the protocol (lead sets x seeds) and for the lead-robust
model: ``configs/protocol.py:ptbxl100`` and ``configs/lead_robust.py:ptbxl100``
(docs/results_ptbxl100.md has the commands and the table they made).
"""

from configs import default

#: variant -> the builder config trained and evaluated.
BUILDS = {"": "paper", "100hz": "paper_100hz"}


def use_ptbxl(c, variant: str = ""):
    """Points ``c`` at in-distribution PTB-XL: train on folds 1-8 of the
    ``BUILDS[variant]`` build, select on fold 9, test on fold 10."""
    if variant not in BUILDS:
        raise ValueError(f"configs/ptbxl.py:{variant}: use one of {sorted(BUILDS)}")
    dataset = f"ptbxl_mi/{BUILDS[variant]}"
    c.train_dataset = dataset
    c.val_split = "validation"
    c.eval_targets = f"{dataset}:test"
    return c


def get_config(variant: str = ""):
    return use_ptbxl(default.get_config(), variant)
