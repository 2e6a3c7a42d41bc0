"""``make demo`` end to end: engine data, then imports and DeepQs protocols in a Scipion project."""

import json
import os
import shutil

import mrcfile
import pytest


def test_scipion_demo(tmp_path, capsys):
    from deepqs_plugin.demo import main

    cwd = os.getcwd()
    try:
        assert main(["--out", str(tmp_path / "demo"), "--project", "deepqs_demo_test_%d" % os.getpid()]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "demo" / "demo_manifest.json").read_text())
    for path in [manifest["map"]["map"], manifest["map"]["model"], *manifest["map"]["half_maps"],
                 *manifest["micrographs"]["micrographs"], manifest["map_histogram_png"]]:
        assert os.path.getsize(path) > 0, path
    with mrcfile.open(manifest["map"]["map"], permissive=True) as m:
        assert float(m.voxel_size.x) == pytest.approx(manifest["map"]["voxel_size_A"])
    assert abs(manifest["map"]["half_map_fsc_0.143_A"] - 4.0) < 0.4
    # Engine steps: Q-score, DeepQs prediction, picking evaluated against the simulated truth.
    # the demo map is as blurred as deposited 4 Å maps: its mean Q is near the EMDB-wide expectation
    assert abs(manifest["qscore"]["mean_q"] - manifest["qscore"]["expected_q"]) < 0.06
    with mrcfile.open(manifest["localq"]["localq"], permissive=True) as m:
        assert m.data.shape == (manifest["map"]["box"][2], manifest["map"]["box"][1], manifest["map"]["box"][0])
    assert -1.0 <= manifest["localq"]["median_q"] <= 1.0
    assert 0.0 < manifest["picking"]["f1"] <= 1.0
    assert "Demo outputs" in out and "Scipion project:" in out
    project_line = next(line for line in out.splitlines() if "Scipion project:" in line)
    project_path = project_line.split("Scipion project:")[1].strip()
    assert os.path.isdir(os.path.join(project_path, "Runs"))
    # Scipion steps: the DeepQs protocol compared its prediction with the simulated model.
    assert "Median local Q inside the mask" in out and "Against the model: per-residue Pearson r" in out
    figures = next(line for line in out.splitlines() if "DeepQs figures" in line).split(": ", 1)[1].strip()
    for name in ("localq_slices.png", "localq_histogram.png", "pred_vs_true.png", "color_by_localq.cxc"):
        assert os.path.getsize(os.path.join(figures, name)) > 100, name
    # ... and DeepEM picked the imported micrographs, evaluated against the imported truth.
    assert "particles picked on 3 micrographs" in out and "Against the known particles (0.5x radius)" in out
    pr = next(line for line in out.splitlines() if "DeepEM picks:" in line).rsplit("curve: ", 1)[1].rstrip(")")
    assert os.path.getsize(pr) > 5000
    # ... and PickerOptimizer pruned those picks into kept and discarded sets.
    line = next(line for line in out.splitlines() if "pruned picks:" in line)
    kept, discarded = (int(v) for v in __import__("re").findall(r"kept (\d+), discarded (\d+)", line)[0])
    assert kept + discarded > 0 and os.path.getsize(line.rsplit("scores: ", 1)[1].rstrip(")")) > 0
    if not os.environ.get("DEEPQS_KEEP_PROJECTS"):
        shutil.rmtree(project_path, ignore_errors=True)
