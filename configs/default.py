"""Default experiment: LeadMix-MST trained on SPH, selected on SPH validation.

    python launch.py --config=configs/default.py --workdir=/tmp/leadmix/default \
        --config.data_dir=~/tensorflow_datasets --config.leads=II,III,aVF

Every field can be overridden on the command line: --config.<field>=<value>.
"""

import ml_collections

from leadmix_jax.data import amplitude


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Data ------------------------------------------------------------------
    c.data_dir = "~/tensorflow_datasets"  # the --data_dir given to `tfds build`
    c.train_dataset = "sph_mi/paper"  # built dataset (name[/config[/version]]) to train on
    c.train_split = "train"  # split trained on (folds 1-8)
    c.val_dataset = ""  # dataset for validation; '' = train_dataset
    c.val_split = "validation"  # split for model selection (fold 9); '' = no validation
    c.leads = "II,III,aVF"  # lead names in input order, or a paper set name (inferior, limb, all12, ...)
    c.norm_max_examples = 20000  # examples of the train split used for per-lead mean/std
    # The clean rule's plausible amplitudes of a filtered window, mV: 'min_peak,max_peak,max_median'
    # (prediction; builds use the same default, docs/data.md gives its source); '' = off.
    c.amplitude_range_mv = amplitude.DEFAULT_AMPLITUDE_RANGE.spec()
    c.workers = 2  # grain worker processes per host for training input (0 = in the main process)
    # Grain workers for validation and evaluation reading. 0: in the main process;
    # every split evaluated (per model and target) would start its workers again, seconds each.
    c.eval_workers = 0
    c.shuffle_window = 4096  # shuffle buffer for TFRecord builds (ArrayRecord shuffles globally)
    c.input_mode = "auto"  # auto, device (split resident in device memory) or grain (streamed)
    c.device_data_budget_bytes = (
        4 * 2**30
    )  # auto: device mode if the train split's shard fits this, per device
    # Model -----------------------------------------------------------------
    c.model = ml_collections.ConfigDict()
    c.model.base = 48  # channels after the stem
    c.model.depth = 3  # (LeadMixBlock, downsample) stages
    c.model.heads = 4  # attention heads over lead tokens
    c.model.dropout = 0.1  # every dropout in the model
    c.model.dtype = "float32"  # compute dtype: float32 or bfloat16 (params stay float32)
    c.model.variant = (
        "official"  # official, or lead_robust: one model for any lead subset (configs/lead_robust.py)
    )
    # Lead-robust variant only (model.variant='lead_robust', leadmix_jax/lead_robust.py) ------------
    c.lead_robust = ml_collections.ConfigDict()
    c.lead_robust.paper_sets = (
        "chest,limb,all12,inferior,lateral,I-II-V3,V1-V3-V5"  # sets masks are drawn from
    )
    c.lead_robust.paper_set_prob = 0.5  # per example: P(one of paper_sets, uniform); else a random subset
    c.lead_robust.random_min_leads = 1  # random subsets: size uniform in [min, max]
    c.lead_robust.random_max_leads = 12
    c.lead_robust.val_sets = (
        "paper"  # validation: mean AUROC over these sets ('paper' = all 7; 'a;b' or 'inferior,lateral')
    )
    # Optimiser (AdamW as the reference) ------------------------------------
    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 1e-3  # peak learning rate
    c.optimizer.weight_decay = 1e-3  # decoupled weight decay on every parameter
    c.optimizer.b1 = 0.9  # Adam beta1
    c.optimizer.b2 = 0.999  # Adam beta2
    c.optimizer.eps = 1e-8  # Adam epsilon
    c.optimizer.schedule = "constant"  # constant (reference) or cosine (with warmup)
    c.optimizer.warmup_steps = 0  # linear warmup steps of the cosine schedule
    c.optimizer.grad_clip_norm = 0.0  # clip gradients to this global norm; 0 = off
    # Loss ------------------------------------------------------------------
    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0  # targets y(1-s)+s/2
    c.loss.pos_weight = 1.0  # weight of the MI term of the BCE
    # Augmentation (off as in the paper), in z-scored units ------------------
    c.augment = ml_collections.ConfigDict()
    c.augment.scale = 0.0  # per-lead amplitude scaling U(1-s, 1+s)
    c.augment.noise = 0.0  # std of additive Gaussian noise
    c.augment.wander = 0.0  # amplitude of a baseline sinusoid (0 = off)
    c.augment.wander_low_hz = 0.05  # its frequency: uniform in [wander_low_hz, wander_high_hz]
    c.augment.wander_high_hz = 0.5
    c.augment.shift = 0  # circular time shift up to +-shift samples
    # Schedule --------------------------------------------------------------
    c.batch_size = 32  # global batch, split across all devices
    c.eval_batch_size = 256  # global batch of evaluation
    c.num_epochs = 25  # passes over the training split
    c.num_train_steps = -1  # if > 0, overrides num_epochs
    c.steps_per_dispatch = (
        8  # training steps per compiled call (lax.scan); cut short at eval/checkpoint steps
    )
    c.log_every_steps = 50  # progress line / metrics every N steps (at the next dispatch end)
    c.eval_every_steps = -1  # validation every N steps; -1 = once per epoch
    c.checkpoint_every_steps = -1  # checkpoint every N steps; -1 = once per epoch
    c.keep_checkpoints = 2  # latest checkpoints kept (the best is kept as well)
    c.seed = 0  # parameters, dropout and shuffling
    c.data_seed = -1  # data order (shuffling, augmentation) if >= 0; -1 = seed
    # Population (launch.py --mode=protocol): lead sets x seeds, one compiled step per lead count.
    c.population = ml_collections.ConfigDict()
    c.population.lead_sets = ""  # ';'-separated lead specs ('paper' = the 7 sets); '' = leads
    c.population.seeds = 1  # members per lead set, seeds seed, seed+1, ...
    # members trained by one vectorised pass of the step; 0 = auto: all on GPU/TPU, 1 on CPU
    c.population.members_per_pass = 0
    # Evaluation (launch.py --mode=eval) ---------------------------------------
    # dataset:split pairs; 'all' = every split of that dataset.
    c.eval_targets = "ptbdb_mi/paper:all,ptbxl_mi/paper:all,sph_mi/paper:test"
    # a dataset may be an absolute path to one built under another data_dir: /data/b/ptbxl_mi/paper:test
    c.exclude_patients = ""  # patient ids left out of evaluation: 'id1,id2' or '@file' (one per line)
    c.eval_checkpoint = "best"  # best, latest or a step number
    c.eval_leads = ""  # lead-robust checkpoints: sets to evaluate ('paper' = all 7; 'inferior,lateral'; 'a;b'); '' = config.leads
    c.eval_plots = True  # ROC, precision-recall and confusion figures per target
    c.bootstrap_samples = 1000  # bootstrap resamples (by patient) for 95% CIs
    # Tables (launch.py --mode=report over --workdirs, and the protocol's table) ----
    c.report = ml_collections.ConfigDict()
    c.report.level = "patient"  # window, record or patient
    c.report.threshold = "0.5"  # threshold of the table: 0.5 or val_youden
    c.report.metrics = "auroc,accuracy,sensitivity,specificity,macro_f1"  # columns per dataset
    # Prediction (launch.py --mode=predict --record=...) ------------------------
    c.predict = ml_collections.ConfigDict()
    # "" = the validation Youden threshold (0.5 if trained without validation); val_youden, 0.5 or a number
    c.predict.threshold = ""
    c.predict.explain = False  # also draw the record's attributions (as --mode=explain)
    # Explanations (launch.py --mode=explain --record=... or --config.explain.split=...) ----
    c.explain = ml_collections.ConfigDict()
    c.explain.method = "integrated_gradients"  # integrated_gradients, grad_cam or smoothgrad
    c.explain.split = ""  # 'dataset:split': mean per-lead importance by class over a split
    c.explain.max_windows = 0  # of the split (evenly spaced); 0 = all
    c.explain.checks = False  # completeness, model randomization and pointing (explain/checks.json)
    c.explain.check_windows = 16  # windows of the randomization and completeness checks
    c.explain.ig_steps = 64  # Integrated Gradients: midpoint-rule steps from the noise baseline
    c.explain.smooth_samples = 16  # SmoothGrad: noisy copies averaged
    c.explain.smooth_sigma = 0.15  # SmoothGrad: noise std, in z-score units
    c.explain.seed = 0  # IG's noise baseline and SmoothGrad's noise
    # Export (launch.py --mode=export; the checkpoint is eval_checkpoint) -------
    c.export = ml_collections.ConfigDict()
    c.export.format = "tflite"  # tflite, onnx or stablehlo
    c.export.quantize = "none"  # none (float32), dynamic (int8 weights) or int8 (weights and activations)
    c.export.dir = ""  # output folder; '' = <workdir>/export
    c.export.calibration_examples = 500  # training windows that calibrate int8
    c.export.latency_runs = 30  # timed single-window runs (the median is reported)
    return c
