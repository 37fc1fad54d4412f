import json

import pandas as pd
import pytest

from qunlearn.analysis.calibration import epoch_table, mean_curves, settled_epoch


def _curves(cells: dict[tuple[str, str], list[tuple[float, float]]], epochs=(5, 10, 15, 20)) -> pd.DataFrame:
    rows = [{"method": method, "lr": "3e-5", "stack": stack, "width": "", "epoch": epoch, "verbmem_f": v, "knowmem_f": k,
             "knowmem_r": 1.0, "targets": 3}
            for (method, stack), values in cells.items() for epoch, (v, k) in zip(epochs, values, strict=True)]
    return pd.DataFrame(rows)


def test_the_slowest_cell_decides():
    curves = _curves({("npo_gdr", "bf16"): [(0.9, 0.8), (0.70, 0.61), (0.69, 0.60), (0.68, 0.60)],
                      ("ga_gdr", "fp32"): [(0.9, 0.8), (0.8, 0.7), (0.66, 0.61), (0.65, 0.60)]})
    assert settled_epoch(curves, tolerance=0.02) == 15
    assert settled_epoch(curves, tolerance=0.25) == 5


def test_a_ratio_that_leaves_the_band_again_is_not_settled():
    curves = _curves({("npo_gdr", "bf16"): [(0.61, 0.6), (0.70, 0.6), (0.61, 0.6), (0.60, 0.6)]})
    assert settled_epoch(curves, tolerance=0.02) == 15


def test_ratios_are_to_each_targets_own_metrics_and_averaged_over_targets(tmp_path):
    for seed, target in enumerate([50.0, 40.0]):
        folder = tmp_path / "metrics" / "toy-news" / f"t{seed}" / "target"
        folder.mkdir(parents=True)
        (folder / "full.json").write_text(json.dumps({"verbmem_f": target, "knowmem_f": 20.0, "knowmem_r": 10.0}))
        record = tmp_path / "unlearned" / "toy-news" / f"t{seed}" / "npo_gdr_lr3e-5_bf16_s0.json"
        record.parent.mkdir(parents=True)
        history = [{"epoch": 1, "forget": 0.1}, {"epoch": 2, "verbmem_f": 20.0, "knowmem_f": 10.0, "knowmem_r": 10.0}]
        record.write_text(json.dumps({"history": history}))
    curves = mean_curves(epoch_table(sorted(tmp_path.glob("unlearned/toy-news/t*/*.json"))))
    assert curves.to_dict("records") == [{"method": "npo_gdr", "lr": "3e-5", "stack": "bf16", "width": "", "epoch": 2,
                                          "verbmem_f": pytest.approx((0.4 + 0.5) / 2), "knowmem_f": 0.5,
                                          "knowmem_r": 1.0, "targets": 2}]


def test_a_width_rung_s_curves_are_its_own(tmp_path):
    for pair, target in (("t0", 50.0), ("t0-w512", 40.0)):
        folder = tmp_path / "metrics" / "toy-news" / pair / "target"
        folder.mkdir(parents=True)
        (folder / "full.json").write_text(json.dumps({"verbmem_f": target, "knowmem_f": 20.0, "knowmem_r": 10.0}))
        record = tmp_path / "unlearned" / "toy-news" / pair / "npo_gdr_lr3e-5_bf16_s0.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"history": [{"epoch": 2, "verbmem_f": 20.0, "knowmem_f": 10.0,
                                                   "knowmem_r": 10.0}]}))
    curves = mean_curves(epoch_table(sorted(tmp_path.glob("unlearned/toy-news/t*/*.json"))))
    assert curves.set_index("width")["verbmem_f"].to_dict() == {"": 0.4, "512": 0.5}
