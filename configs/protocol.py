"""The paper's protocol in one command: the 7 lead sets x 3 seeds, trained on
SPH as one population per lead count, each selected on SPH validation,
evaluated on all of PTB and PTB-XL and on SPH test, with a mean ± std table.

    python launch.py --mode=protocol --config=configs/protocol.py \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/protocol

The same on the demo's synthetic databases (no download; minutes on a CPU):

    python launch.py --config=configs/protocol.py:demo --workdir=runs/protocol_demo

In-distribution on PTB-XL at 100 Hz (folds 1-8 train, 9 select, 10 test;
docs/results_ptbxl100.md):

    python launch.py --config=configs/protocol.py:ptbxl100 \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/protocol_ptbxl100

Results: runs/protocol/protocol/table.md and table.csv; every member is an
ordinary workdir under runs/protocol/members/<set>_seed<s>/ (--mode=eval,
predict and export take it as --workdir).
"""

from configs import demo, paper, ptbxl


def get_config(variant: str = ""):
    if variant not in ("", "demo", "ptbxl100"):
        raise ValueError(
            f"configs/protocol.py:{variant}: use configs/protocol.py, configs/protocol.py:demo or :ptbxl100"
        )
    c = demo.get_config() if variant == "demo" else paper.get_config()
    c.mode = "protocol"  # launch.py's default mode for this config
    c.input_mode = "auto"  # populations need the training split in device memory (checked)
    c.population.lead_sets = "paper"  # chest, limb, all12, inferior, lateral, I-II-V3, V1-V3-V5
    c.population.seeds = 3
    if variant == "ptbxl100":
        ptbxl.use_ptbxl(c, "100hz")  # PTB-XL at 100 Hz: folds 1-8 / 9 / 10
    if variant == "demo":
        c.num_epochs = 4
        c.bootstrap_samples = 100
    return c
