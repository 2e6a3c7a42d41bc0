"""Validation level 5: coordinates scored by the pruning classifier (skipped where it is absent)."""

import os

import numpy as np
import pytest
import torch

from deepqs.validation import checks as C
from deepqs.validation import level5

from validation_data import inputs

pruning = pytest.importorskip("deepqs.pruning")


@pytest.fixture(scope="module")
def micrograph(tmp_path_factory):
    if not os.path.exists(pruning.DEFAULT_MODEL):
        pytest.skip("no shipped pruning model in this checkout")
    torch.set_num_threads(1)
    from deepqs.io import write_micrograph
    from deepqs.simulate.micrographs import simulate_micrographs

    d = tmp_path_factory.mktemp("l5")
    m = simulate_micrographs(n=1, shape=(448, 448), pixel_size=2.0, n_particles=10, seed=1,
                             junk={"ice_blobs": 4, "carbon_edge": 1, "aggregates": 1})[0]
    write_micrograph(d / "mic0.mrc", m.image, m.pixel_size_A)
    good = [(x, y) for x, y in m.coordinates]
    junk = [tuple(j["center_xy"]) for j in m.junk if "center_xy" in j]
    yy, xx = np.nonzero(m.carbon_mask)
    k = np.random.default_rng(0).choice(len(yy), 8)
    junk += [(xx[i], yy[i]) for i in k]

    def star(name, rows):
        lines = ["data_particles", "loop_", "_rlnMicrographName #1", "_rlnCoordinateX #2", "_rlnCoordinateY #3"]
        lines += [f"mic0.mrc {x:.1f} {y:.1f}" for x, y in rows]
        (d / name).write_text("\n".join(lines) + "\n")

    star("good.star", good)
    star("bad.star", good[:4] + junk)
    return d, int(round(1.85 * m.particle_diameter_px)), len(good), len(junk)


def test_true_particles_pass(micrograph):
    d, box, n_good, _ = micrograph
    c = level5.check_5a(inputs(micrographs=[str(d / "mic0.mrc")], coords=str(d / "good.star"), box_px=box))
    assert c.status == C.OK, c.warnings
    assert c.values["coordinates"] == n_good and c.values["junk_fraction"] <= C.MAX_JUNK_FRACTION


def test_contamination_and_carbon_coordinates_warn(micrograph):
    d, box, _, n_junk = micrograph
    c = level5.check_5a(inputs(micrographs=[str(d / "mic0.mrc")], coords=str(d / "bad.star"), box_px=box))
    assert c.status == C.WARNING
    assert c.values["coordinates"] == 4 + n_junk
    assert c.values["junk_fraction"] > 0.4


def test_one_coordinate_file_per_micrograph_through_the_cli(micrograph, tmp_path):
    """``--coords`` takes several files (one per micrograph, matched by stem); every coordinate counts."""
    import json
    import shutil

    from deepqs.cli import main
    from validation_data import clean

    d, box, n_good, _ = micrograph
    rows = [line for line in (d / "good.star").read_text().splitlines() if line.startswith("mic0.mrc")]
    xy = [tuple(float(v) for v in r.split()[1:3]) for r in rows]
    shutil.copy(d / "mic0.mrc", tmp_path / "mic1.mrc")
    for stem, part in (("mic0", xy[: len(xy) // 2]), ("mic1", xy[len(xy) // 2:])):
        (tmp_path / f"{stem}.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in part))
    from deepqs.io import write_map
    _, sim, threshold = clean()
    write_map(tmp_path / "map.mrc", sim.map)
    rc = main(["validate", "--map", str(tmp_path / "map.mrc"), "--threshold", str(threshold), "--resolution", "6",
               "--micrographs", str(d / "mic0.mrc"), str(tmp_path / "mic1.mrc"),
               "--coords", str(tmp_path / "mic0.csv"), str(tmp_path / "mic1.csv"), "--box", str(box),
               "--only", "5.a", "--out-dir", str(tmp_path / "rep")])
    assert rc == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    c = next(c for c in report["checks"] if c["id"] == "5.a")
    assert c["values"]["coordinates"] == n_good and c["values"]["unmatched_coordinates"] == 0
    assert {i["role"] for i in report["inputs"]} >= {"coords_1", "coords_2"}
