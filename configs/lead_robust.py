"""One lead-robust LeadMix-MST for every lead subset (issue #12).

Trains on all 12 leads with a random lead-presence mask per example (the
paper's 7 sets and random subsets of 1-12 leads, see
leadmix_jax/lead_robust.py); evaluation picks the subset:

    python launch.py --config=configs/lead_robust.py --workdir=runs/robust \
        --config.data_dir=~/tensorflow_datasets
    python launch.py --mode=eval --workdir=runs/robust --config.eval_leads=paper   # one eval per paper set
    python launch.py --mode=eval --workdir=runs/robust --config.leads=inferior     # one set (default: all 12)
    python launch.py --mode=predict --workdir=runs/robust --record=x.npy --fs=500 --lead_names=II
    python launch.py --mode=report --workdirs=runs/inferior,runs/robust --workdir=runs/table
"""

from configs import paper


def get_config():
    c = paper.get_config()
    c.model.variant = "lead_robust"
    c.leads = "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"  # trains on all 12; at eval/predict: the subset used
    c.lead_robust.paper_sets = "chest,limb,all12,inferior,lateral,I-II-V3,V1-V3-V5"
    c.lead_robust.paper_set_prob = 0.5  # half the examples see a paper set, half a random subset
    c.lead_robust.random_min_leads = 1
    c.lead_robust.random_max_leads = 12
    c.lead_robust.val_sets = "paper"  # best checkpoint: mean validation AUROC over the 7 sets
    c.eval_leads = (
        ""  # --mode=eval: config.leads (all 12) unless --config.eval_leads=paper (every paper set) or a list
    )
    return c
