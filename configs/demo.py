"""The no-download demo: synthetic PTB, PTB-XL and SPH databases, built with
the real TFDS builders, LeadMix-MST trained on synthetic SPH and evaluated
cross-dataset on synthetic PTB and PTB-XL. Minutes on a 2-core CPU.

    python launch.py --config=configs/demo.py --workdir=runs/demo
"""

import ml_collections

from configs import default


def get_config():
    c = default.get_config()
    c.mode = "demo"  # launch.py's default mode for this config (see leadmix_jax.workflows.demo)
    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.seed = 0  # generator seed
    c.synthetic.sph_records = 600  # synthetic SPH records (training database)
    c.synthetic.ptbxl_records = 200  # synthetic PTB-XL records (cross-dataset test)
    c.synthetic.ptb_patients = 40  # synthetic PTB patients (cross-dataset test, 30-60 s records)
    c.data_dir = ""  # set by the demo to <workdir>/tfds
    c.train_dataset = "sph_mi/paper"
    c.leads = "inferior"  # II, III, aVF
    c.model.base = 24  # a narrower model keeps the demo within minutes on a CPU
    c.batch_size = 32
    c.input_mode = "auto"  # device-resident when the split fits, else grain
    c.steps_per_dispatch = 1  # on a CPU a dispatch costs nothing next to a step; one compilation
    c.num_epochs = 8
    c.log_every_steps = 20
    c.workers = 0
    c.norm_max_examples = 2000
    c.bootstrap_samples = 200
    c.eval_targets = "ptbdb_mi/paper:all,ptbxl_mi/paper:all,sph_mi/paper:test"
    return c
