"""``python -m leadmix_jax.synthetic ROOT``: writes synthetic PTB, PTB-XL and SPH."""

import argparse
import json

from leadmix_jax.synthetic import write_all


def main() -> None:
    ap = argparse.ArgumentParser(description="Write synthetic PTB / PTB-XL / SPH databases.")
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ptb-patients", type=int, default=12)
    ap.add_argument("--ptbxl-records", type=int, default=60)
    ap.add_argument("--sph-records", type=int, default=60)
    a = ap.parse_args()
    out = write_all(
        a.root, a.seed, ptb_patients=a.ptb_patients, ptbxl_records=a.ptbxl_records, sph_records=a.sph_records
    )
    print(
        json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "records"} for k, v in out.items()}, indent=1)
    )


if __name__ == "__main__":  # pragma: no cover
    main()
