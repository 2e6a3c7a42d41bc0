"""deepqs.io.maps: MRC/CCP4 reading conventions, writers, bad files and real header edge cases."""

import json
import warnings

import mrcfile
import numpy as np
import pytest
from helpers import assert_input_error

from deepqs.errors import InputError
from deepqs.io import (
    MapData,
    map_header_info,
    read_map,
    read_micrograph,
    read_stack,
    write_map,
    write_micrograph,
    write_stack,
)

F32 = np.finfo(np.float32).eps


def _volume(shape=(5, 6, 7), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _raw_mrc(path, file_array, **header):
    """Write ``file_array`` (file order: sections, rows, columns) and then set header fields raw."""
    with warnings.catch_warnings(), mrcfile.new(str(path), overwrite=True) as mrc:
        warnings.simplefilter("ignore", RuntimeWarning)  # stats of NaN/Inf test arrays
        mrc.set_data(file_array)
        mrc.voxel_size = 1.0  # mrcfile.new leaves cella = 0
        h = mrc.header
        for key, value in header.items():
            if key == "origin":
                h.origin.x, h.origin.y, h.origin.z = value
            elif key == "cella":
                h.cella.x, h.cella.y, h.cella.z = value
            elif key == "nstart":
                h.nxstart, h.nystart, h.nzstart = value
            elif key == "axes":
                h.mapc, h.mapr, h.maps = value
            elif key == "sampling":
                h.mx, h.my, h.mz = value
            else:
                setattr(h, key, value)
    return path




# ------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------
def test_write_read_round_trip_exact(tmp_path):
    data = _volume((5, 6, 7))
    vs = (1.1, 1.2, 1.3)
    origin = (10.5, -3.25, 145.825)
    out = tmp_path / "rt.mrc"
    write_map(out, data, voxel_size=vs, origin=origin)
    m = read_map(out)
    assert m.data.dtype == np.float32 and m.data.shape == (5, 6, 7)
    assert m.data.flags.c_contiguous and m.data.flags.writeable
    np.testing.assert_array_equal(m.data, data)
    np.testing.assert_allclose(m.voxel_size, vs, rtol=2 * F32)
    np.testing.assert_allclose(m.origin, np.float32(origin), rtol=0, atol=0)
    assert m.path == str(out)
    with mrcfile.open(str(out)) as mrc:
        h = mrc.header
        assert int(h.mode) == 2 and (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
        assert (int(h.nxstart), int(h.nystart), int(h.nzstart)) == (0, 0, 0)
        assert int(h.ispg) == 1 and (int(h.mx), int(h.my), int(h.mz)) == (7, 6, 5)
        assert float(h.dmax) == pytest.approx(float(data.max()))
        assert float(h.dmin) == pytest.approx(float(data.min()))
        assert float(h.dmean) == pytest.approx(float(data.mean()), abs=1e-6)
        assert float(h.rms) == pytest.approx(float(data.std()), rel=1e-5)


def test_write_mapdata_keeps_grid_and_overrides(tmp_path):
    m0 = MapData(_volume((4, 4, 4)), voxel_size=0.83, origin=(1.0, 2.0, 3.0))
    write_map(tmp_path / "a.mrc", m0)
    m1 = read_map(tmp_path / "a.mrc")
    np.testing.assert_allclose(m1.voxel_size, [0.83] * 3, rtol=2 * F32)
    np.testing.assert_array_equal(m1.origin, [1.0, 2.0, 3.0])
    write_map(tmp_path / "b.mrc", m0, voxel_size=2.0, origin=(0, 0, 0))
    m2 = read_map(tmp_path / "b.mrc")
    np.testing.assert_array_equal(m2.voxel_size, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(m2.origin, [0.0, 0.0, 0.0])


def test_write_compressed_round_trip(tmp_path):
    data = _volume((3, 4, 5))
    for name in ("c.mrc.gz", "c.mrc.bz2"):
        write_map(tmp_path / name, data, voxel_size=1.5, origin=(3.0, 0.0, -1.5))
        m = read_map(tmp_path / name, mmap=True)  # compressed: read into memory anyway
        np.testing.assert_array_equal(m.data, data)
        np.testing.assert_array_equal(m.origin, [3.0, 0.0, -1.5])
        assert map_header_info(tmp_path / name)["compressed"] in ("gzip", "bzip2")


def test_mmap_float32_is_not_copied(tmp_path):
    data = _volume((6, 5, 4))
    write_map(tmp_path / "m.mrc", data, voxel_size=1.0)
    m = read_map(tmp_path / "m.mrc", mmap=True)
    assert isinstance(m.data, np.memmap)
    assert not m.data.flags.writeable
    np.testing.assert_array_equal(np.asarray(m.data), data)
    # mode 1 with mmap: converted in memory
    _raw_mrc(tmp_path / "i16.mrc", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    m16 = read_map(tmp_path / "i16.mrc", mmap=True)
    assert m16.data.dtype == np.float32 and not isinstance(m16.data, np.memmap)
    np.testing.assert_array_equal(m16.data, np.arange(24).reshape(2, 3, 4))


def test_failed_write_leaves_no_file(tmp_path):
    bad = _volume((3, 3, 3))
    bad[1, 1, 1] = np.nan
    target = tmp_path / "bad.mrc"
    with pytest.raises(ValueError):
        write_map(target, bad, voxel_size=1.0)
    assert list(tmp_path.iterdir()) == []
    write_map(target, _volume((3, 3, 3)), voxel_size=1.0)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_map(target, bad, voxel_size=1.0)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mrc"]


@pytest.mark.parametrize(
    "dtype, mode",
    [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)],
)
def test_modes_are_read_as_float32(tmp_path, dtype, mode):
    values = np.arange(-5, 55).reshape(3, 4, 5)
    if dtype == np.uint16:
        values = values + 5
    arr = values.astype(dtype)
    path = _raw_mrc(tmp_path / f"mode{mode}.mrc", arr, cella=(5.0, 4.0, 3.0))
    with mrcfile.open(str(path)) as mrc:
        assert int(mrc.header.mode) == mode
    m = read_map(path)
    assert m.data.dtype == np.float32
    np.testing.assert_array_equal(m.data, values.astype(np.float32))
    np.testing.assert_allclose(m.voxel_size, [1.0, 1.0, 1.0])
    assert map_header_info(path)["mode"] == mode


def test_imod_unsigned_mode0(tmp_path):
    values = np.array([0, 1, 127, 128, 200, 255], dtype=np.uint8).reshape(1, 2, 3)
    path = _raw_mrc(tmp_path / "imod.mrc", values.view(np.int8))
    np.testing.assert_array_equal(read_map(path).data, values.view(np.int8).astype(np.float32))
    blob = bytearray(path.read_bytes())
    blob[152:160] = np.array([1146047817, 1], dtype="<i4").tobytes()  # imodStamp, imodFlags (bit 0: unsigned)
    path.write_bytes(bytes(blob))
    np.testing.assert_array_equal(read_map(path).data, values.astype(np.float32))


# ------------------------------------------------------------------------------------------
# axis order, origin, voxel size
# ------------------------------------------------------------------------------------------
def _zyx_volume():
    # distinct extents so that any wrong transpose changes the shape
    nz, ny, nx = 2, 3, 4
    return np.arange(nz * ny * nx, dtype=np.float32).reshape(nz, ny, nx) * 1.5 - 7.0


@pytest.mark.parametrize(
    "axes, transpose",
    [
        # file array axes are (section, row, column); V axes are (z, y, x)
        ((1, 2, 3), (0, 1, 2)),
        ((3, 1, 2), (1, 2, 0)),  # column = z, row = x, section = y
        ((3, 2, 1), (2, 1, 0)),  # column = z, row = y, section = x
        ((2, 3, 1), (2, 0, 1)),  # column = y, row = z, section = x
    ],
)
def test_axis_order_is_normalised_to_zyx(tmp_path, axes, transpose):
    v = _zyx_volume()
    file_arr = np.ascontiguousarray(v.transpose(transpose))
    vs = np.array([0.5, 0.75, 1.25])  # x, y, z
    nstart_xyz = np.array([-3, 7, 5])
    nstart_crs = tuple(int(nstart_xyz[a - 1]) for a in axes)
    n_xyz = np.array(v.shape[::-1])
    path = _raw_mrc(
        tmp_path / "axes.map",
        file_arr,
        axes=axes,
        nstart=nstart_crs,
        sampling=tuple(int(n) for n in n_xyz),
        cella=tuple(float(x) for x in vs * n_xyz),
    )
    m = read_map(path)
    assert m.data.shape == (2, 3, 4)
    assert m.data.flags.c_contiguous
    np.testing.assert_array_equal(m.data, v)
    np.testing.assert_allclose(m.voxel_size, vs, rtol=2 * F32)
    np.testing.assert_allclose(m.origin, nstart_xyz * vs, rtol=2 * F32)
    info = map_header_info(path)
    assert info["axis_order"] == list(axes)
    assert info["shape"] == [2, 3, 4]
    assert info["nstart"] == list(nstart_crs) and info["nstart_xyz"] == list(nstart_xyz)
    # the written copy is in standard order with the origin in the header field
    write_map(tmp_path / "std.mrc", m)
    m2 = read_map(tmp_path / "std.mrc", mmap=True)
    np.testing.assert_array_equal(m2.data, v)
    np.testing.assert_allclose(m2.origin, m.origin, rtol=2 * F32)
    assert map_header_info(tmp_path / "std.mrc")["axis_order"] == [1, 2, 3]


def test_header_origin_beats_nstart(tmp_path):
    arr = _volume((3, 3, 3))
    both = _raw_mrc(tmp_path / "both.mrc", arr, nstart=(-13, -13, -12), origin=(-8.5, 2.25, 0.0))
    np.testing.assert_array_equal(read_map(both).origin, [-8.5, 2.25, 0.0])
    assert map_header_info(both)["origin_source"] == "header"
    only_nstart = _raw_mrc(tmp_path / "ns.mrc", arr, nstart=(-2, 0, 4), cella=(6.0, 6.0, 6.0))
    np.testing.assert_allclose(read_map(only_nstart).origin, [-4.0, 0.0, 8.0])
    assert map_header_info(only_nstart)["origin_source"] == "nstart"
    # the nstart origin follows a voxel size override
    np.testing.assert_allclose(read_map(only_nstart, voxel_size=0.5).origin, [-1.0, 0.0, 2.0])
    # a header origin is in Angstrom already: an override leaves it alone
    np.testing.assert_array_equal(read_map(both, voxel_size=3.0).origin, [-8.5, 2.25, 0.0])


def test_voxel_size_override_and_invalid_voxel_size(tmp_path):
    arr = _volume((3, 4, 5))
    zero = _raw_mrc(tmp_path / "zero_cell.mrc", arr, cella=(0.0, 0.0, 0.0))
    with pytest.raises(InputError) as exc:
        read_map(zero)
    assert_input_error(exc, zero, "voxel size", "override")
    np.testing.assert_array_equal(read_map(zero, voxel_size=1.34).voxel_size, [1.34] * 3)
    np.testing.assert_array_equal(read_map(zero, voxel_size=(1.0, 2.0, 3.0)).voxel_size, [1.0, 2.0, 3.0])
    with pytest.raises(InputError):
        read_map(zero, voxel_size=-1.0)
    neg = _raw_mrc(tmp_path / "neg.mrc", arr, cella=(5.0, -4.0, 3.0))
    with pytest.raises(InputError, match="override"):
        read_map(neg)
    nan = _raw_mrc(tmp_path / "nan_cell.mrc", arr, cella=(5.0, float("nan"), 3.0))
    with pytest.raises(InputError, match="override"):
        read_map(nan)
    info = map_header_info(nan)  # reported, not raised
    assert info["voxel_size_valid"] is False and info["voxel_size_A"][1] is None
    json.dumps(info)


def test_ispg0_volume_is_a_volume_and_stacks_need_allow_stack(tmp_path):
    arr = _volume((4, 5, 6))
    chim = _raw_mrc(tmp_path / "chimera.mrc", arr, ispg=0, sampling=(6, 5, 4))
    m = read_map(chim)
    assert m.shape == (4, 5, 6)
    stack = tmp_path / "parts.mrcs"
    write_stack(stack, arr, pixel_size=1.7)
    with pytest.raises(InputError) as exc:
        read_map(stack)
    assert_input_error(exc, stack, "stack")
    ms = read_map(stack, allow_stack=True)
    assert ms.shape == (4, 5, 6)
    np.testing.assert_allclose(ms.voxel_size, [1.7] * 3, rtol=2 * F32)
    # ispg 0 with mz = 1 and nz > 1 (MRC2014 image stack) under a .mrc name is a stack too
    mz1 = _raw_mrc(tmp_path / "mz1.mrc", arr, ispg=0, sampling=(6, 5, 1))
    with pytest.raises(InputError, match="stack"):
        read_map(mz1)
    assert read_map(mz1, allow_stack=True).shape == (4, 5, 6)


# ------------------------------------------------------------------------------------------
# 2D images and stacks
# ------------------------------------------------------------------------------------------
def test_micrograph_round_trip_and_2d_read_map(tmp_path):
    img = _volume((1, 30, 40))[0]
    out = tmp_path / "mic.mrc"
    write_micrograph(out, img, pixel_size=0.85)
    arr, ps = read_micrograph(out)
    assert arr.shape == (30, 40) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, img)
    assert ps == pytest.approx(0.85, rel=2 * F32)
    with mrcfile.open(str(out)) as mrc:
        assert int(mrc.header.ispg) == 0 and int(mrc.header.mz) == 1
    m = read_map(out)
    assert m.shape == (1, 30, 40)
    np.testing.assert_array_equal(m.data[0], img)
    arr2, ps2 = read_micrograph(out, pixel_size=1.5)
    assert ps2 == 1.5


def test_micrograph_refuses_stacks_and_zero_pixel_size(tmp_path):
    stack = tmp_path / "three.mrcs"
    write_stack(stack, _volume((3, 8, 8)), pixel_size=1.0)
    with pytest.raises(InputError) as exc:
        read_micrograph(stack)
    assert_input_error(exc, stack, "3 sections")
    one = tmp_path / "one.mrcs"
    write_stack(one, _volume((1, 8, 8)), pixel_size=2.0)
    arr, ps = read_micrograph(one)
    assert arr.shape == (8, 8) and ps == 2.0
    zero = _raw_mrc(tmp_path / "zero_px.mrc", _volume((8, 9)), cella=(0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="override"):
        read_micrograph(zero)
    assert read_micrograph(zero, pixel_size=1.06)[1] == 1.06
    aniso = _raw_mrc(tmp_path / "aniso.mrc", _volume((8, 8)), cella=(8.0, 16.0, 1.0))
    with pytest.raises(InputError, match="non-square"):
        read_micrograph(aniso)


def test_stack_round_trip(tmp_path):
    imgs = _volume((5, 16, 12))
    out = tmp_path / "p.mrcs"
    write_stack(out, imgs, pixel_size=1.23)
    arr, ps = read_stack(out)
    assert arr.shape == (5, 16, 12)
    np.testing.assert_array_equal(arr, imgs)
    assert ps == pytest.approx(1.23, rel=2 * F32)
    with mrcfile.open(str(out)) as mrc:
        assert int(mrc.header.ispg) == 0 and int(mrc.header.mz) == 1 and int(mrc.header.nz) == 5
    # a single 2D image reads as a stack of one
    write_micrograph(tmp_path / "single.mrc", imgs[0], 1.0)
    arr1, _ = read_stack(tmp_path / "single.mrc")
    assert arr1.shape == (1, 16, 12)


def test_map_header_info_is_plain_json(tmp_path):
    data = _volume((4, 5, 6))
    write_map(tmp_path / "h.mrc", data, voxel_size=(1.0, 1.5, 2.0), origin=(1.0, 2.0, 3.0))
    info = map_header_info(tmp_path / "h.mrc")
    assert json.loads(json.dumps(info)) == info
    assert info["shape"] == [4, 5, 6] and info["grid_size_xyz"] == [6, 5, 4]
    assert info["mode"] == 2 and info["dtype"] == "float32"
    np.testing.assert_allclose(info["voxel_size_A"], [1.0, 1.5, 2.0])
    assert info["origin_A"] == [1.0, 2.0, 3.0]
    assert info["axis_order"] == [1, 2, 3] and info["ispg"] == 1 and info["nversion"] >= 20140
    assert info["min"] == pytest.approx(float(data.min()))
    assert info["max"] == pytest.approx(float(data.max()))
    assert info["mean"] == pytest.approx(float(data.astype(np.float64).mean()))
    assert info["std"] == pytest.approx(float(data.astype(np.float64).std()))
    assert info["n_nonfinite"] == 0 and info["is_stack"] is False


# ------------------------------------------------------------------------------------------
# bad files
# ------------------------------------------------------------------------------------------
def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError) as exc:
        read_map(tmp_path / "nope.mrc")
    assert_input_error(exc, "nope.mrc", "not found")
    empty = tmp_path / "empty.mrc"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as exc:
        read_map(empty)
    assert_input_error(exc, empty, "empty")
    with pytest.raises(InputError, match="empty"):
        map_header_info(empty)


def test_garbage_and_short_files(tmp_path):
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as exc:
        read_map(garbage)
    assert_input_error(exc, garbage, "not an MRC")
    short = tmp_path / "short.map"
    short.write_bytes(b"hello, not a map\n" * 10)
    with pytest.raises(InputError) as exc:
        read_map(short)
    assert_input_error(exc, short, "not an MRC", "1024")
    text = tmp_path / "text.mrc"
    text.write_bytes(b"ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N\n" * 30)
    with pytest.raises(InputError, match="not an MRC"):
        read_map(text)


def test_bad_axis_order_is_not_an_mrc(tmp_path):
    path = _raw_mrc(tmp_path / "axes.mrc", _volume((2, 2, 2)), axes=(1, 1, 3))
    with pytest.raises(InputError) as exc:
        read_map(path)
    assert_input_error(exc, path, "mapc/mapr/maps", "(1, 1, 3)")


def test_truncated_file(tmp_path):
    write_map(tmp_path / "full.mrc", _volume((4, 4, 4)), voxel_size=1.0)
    blob = (tmp_path / "full.mrc").read_bytes()
    trunc = tmp_path / "trunc.mrc"
    trunc.write_bytes(blob[:-100])
    for mmap in (False, True):
        with pytest.raises(InputError) as exc:
            read_map(trunc, mmap=mmap)
        assert_input_error(exc, trunc, "truncated", "256 bytes")
    with pytest.raises(InputError, match="truncated"):
        map_header_info(trunc)
    header_only = tmp_path / "header_only.mrc"
    header_only.write_bytes(blob[:1024])
    with pytest.raises(InputError, match="truncated"):
        read_map(header_only)


def test_truncated_gzip(tmp_path):
    write_map(tmp_path / "full.mrc.gz", _volume((8, 8, 8)), voxel_size=1.0)
    blob = (tmp_path / "full.mrc.gz").read_bytes()
    trunc = tmp_path / "trunc.mrc.gz"
    trunc.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError) as exc:
        read_map(trunc)
    assert_input_error(exc, trunc)


@pytest.mark.parametrize("mode", [3, 4])
def test_complex_modes_are_refused(tmp_path, mode):
    path = tmp_path / f"complex{mode}.mrc"
    if mode == 4:
        with mrcfile.new(str(path)) as mrc:
            mrc.set_data(np.ones((2, 3, 4), dtype=np.complex64))
    else:
        _raw_mrc(path, np.ones((2, 3, 4), dtype=np.float32), mode=3)
    with pytest.raises(InputError) as exc:
        read_map(path)
    assert_input_error(exc, path, f"mode {mode}", "unsupported")
    with pytest.raises(InputError, match="unsupported"):
        map_header_info(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path, bad):
    arr = _volume((3, 4, 5))
    arr[2, 1, 0] = bad
    path = _raw_mrc(tmp_path / "nonfinite.mrc", arr)
    for mmap in (False, True):
        with pytest.raises(InputError) as exc:
            read_map(path, mmap=mmap)
        assert_input_error(exc, path, "non-finite")
    info = map_header_info(path)
    assert info["n_nonfinite"] == 1
    assert info["max"] == pytest.approx(float(np.nanmax(np.where(np.isfinite(arr), arr, np.nan))))
    json.dumps(info, allow_nan=False)


def test_zero_size_map(tmp_path):
    path = tmp_path / "zero.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.zeros((0, 3, 4), dtype=np.float32))
    with pytest.raises(InputError) as exc:
        read_map(path)
    assert_input_error(exc, path, "zero-size")


def test_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match="folder"):
        read_map(tmp_path)


# ------------------------------------------------------------------------------------------
# real header edge cases (../shared/data)
# ------------------------------------------------------------------------------------------
# file -> (reader, expected shape [z, y, x] or [n, y, x], voxel (x, y, z), origin (x, y, z))
EDGE = {
    "mrcfile_tests/EMD-3197.map": ("map", (20, 20, 20), (11.4,) * 3, (-2 * 11.4, 0.0, 0.0)),
    "mrcfile_tests/emd_3197.map.gz": ("map", (20, 20, 20), (11.4,) * 3, (-2 * 11.4, 0.0, 0.0)),
    "mrcfile_tests/EMD-3197.map.bz2": ("map", (20, 20, 20), (11.4,) * 3, (-2 * 11.4, 0.0, 0.0)),
    # mapc/mapr/maps = 3,1,2: columns z (73), rows x (43), sections y (25); nstart (c,r,s) = (0,-21,-12)
    "mrcfile_tests/EMD-3001.map": (
        "map", (73, 25, 43), (0.44825, 0.3925, 0.45875), (-21 * 0.44825, -12 * 0.3925, 0.0)),
    "mrcfile_tests/fei-extended_crop512.mrc": ("micrograph", (512, 512), (0.8537755,) * 2, None),
    "mrcfile_tests/epu2.9_example_crop512.mrc": ("micrograph", (512, 512), (0.66655135,) * 2, None),
    # 3,2,1 with nstart (c,r,s) = (22, 21, 20): x from 20, y from 21, z from 22
    "other_repos/cctbx_ccp4_20_21_22_to_30_40_50.ccp4": (
        "map", (29, 20, 11), (0.44601852, 0.41728333, 0.43372223),
        (20 * 0.44601852, 21 * 0.41728333, 22 * 0.43372223)),
    "other_repos/cctbx_cctbx_D7.ccp4": ("map", (40, 54, 54), (0.7122778, 0.6990371, 0.736475), (0.0, 0.0, 0.0)),
    "other_repos/cctbx_iotbx_D7.ccp4": ("map", (45, 45, 45), (0.44444445,) * 3, (0.0, 0.0, 0.0)),
    "other_repos/cctbx_non_zero_origin_map.ccp4": (
        "map", (32, 40, 30), (0.7470333, 0.72307503, 0.7374375),
        (100 * 0.7470333, 100 * 0.72307503, 100 * 0.7374375)),
    # 3,1,2, 8 sections of 16 x 16
    "other_repos/cctbx_tst_input.map": ("map", (16, 8, 16), (5.1309376, 4.68175, 4.35225), (0.0, 0.0, 0.0)),
    "other_repos/xmipp_singleImage.mrc": ("micrograph", (3, 3), (1.0, 1.0), None),
    "other_repos/xmipp_smallStack.mrcs": ("stack", (4, 64, 64), (1.0, 1.0), None),
    "other_repos/aspire_sample.mrcs": ("stack_zero_voxel", (17, 200, 200), None, None),
}


def test_every_header_edge_case_file_is_covered(shared_data):
    folder = shared_data / "maps" / "header_edge_cases"
    found = {
        f"{p.parent.name}/{p.name}"
        for p in folder.glob("*/*")
        if not p.name.endswith((".py", ".md", ".txt", ".pdb"))
    }
    assert found == set(EDGE)


@pytest.mark.parametrize("name", sorted(EDGE))
def test_header_edge_case(shared_data, name):
    path = shared_data / "maps" / "header_edge_cases" / name
    kind, shape, voxel, origin = EDGE[name]
    info = map_header_info(path)
    json.dumps(info)
    if kind == "map":
        m = read_map(path)
        assert m.shape == shape
        np.testing.assert_allclose(m.voxel_size, voxel, rtol=1e-5)
        np.testing.assert_allclose(m.origin, origin, rtol=1e-5, atol=1e-9)
        assert m.data.dtype == np.float32 and np.isfinite(m.data).all()
        # the stats are the same whichever way the axes are stored
        assert float(m.data.max()) == pytest.approx(info["max"])
        assert float(m.data.astype(np.float64).mean()) == pytest.approx(info["mean"])
        mm = read_map(path, mmap=True)
        np.testing.assert_array_equal(np.asarray(mm.data), m.data)
    elif kind == "micrograph":
        img, ps = read_micrograph(path)
        assert img.shape == shape and img.dtype == np.float32
        assert ps == pytest.approx(voxel[0], rel=1e-5)
        assert read_map(path).shape == (1,) + shape
    elif kind == "stack":
        imgs, ps = read_stack(path)
        assert imgs.shape == shape and ps == pytest.approx(voxel[0])
        assert info["is_stack"] is True
        with pytest.raises(InputError, match="stack"):
            read_map(path)
        with pytest.raises(InputError, match="sections"):
            read_micrograph(path)
    else:  # zero voxel size stack
        assert info["voxel_size_valid"] is False and info["is_stack"] is True
        with pytest.raises(InputError) as exc:
            read_stack(path)
        assert_input_error(exc, path, "voxel size", "override")
        with pytest.raises(InputError, match="override"):
            read_map(path, allow_stack=True)
        imgs, ps = read_stack(path, pixel_size=1.5)
        assert imgs.shape == shape and ps == 1.5
        m = read_map(path, voxel_size=1.5, allow_stack=True)
        assert m.shape == shape and np.all(m.voxel_size == 1.5)


def test_edge_case_quirks(shared_data):
    folder = shared_data / "maps" / "header_edge_cases"
    e3197 = map_header_info(folder / "mrcfile_tests" / "EMD-3197.map")
    assert e3197["nstart"] == [-2, 0, 0] and e3197["nversion"] == 0 and e3197["origin_source"] == "nstart"
    e3001 = map_header_info(folder / "mrcfile_tests" / "EMD-3001.map")
    assert e3001["axis_order"] == [3, 1, 2] and e3001["ispg"] == 4 and e3001["nsymbt"] == 160
    assert e3001["sampling_mxyz"] == [40, 12, 72] and e3001["grid_size_xyz"] == [43, 25, 73]
    assert e3001["cell_angles_deg"][1] == pytest.approx(94.326, abs=1e-3)
    fei = map_header_info(folder / "mrcfile_tests" / "fei-extended_crop512.mrc")
    assert fei["mode"] == 6 and fei["exttyp"] == "FEI1" and fei["nsymbt"] == 786432
    assert fei["voxel_size_A"][2] == 0.0 and fei["voxel_size_valid"] is True
    epu = map_header_info(folder / "mrcfile_tests" / "epu2.9_example_crop512.mrc")
    assert epu["exttyp"] == "FEI2" and epu["nsymbt"] == 909312
    # uint16 micrograph values come through unchanged
    img, _ = read_micrograph(folder / "mrcfile_tests" / "fei-extended_crop512.mrc")
    with mrcfile.open(str(folder / "mrcfile_tests" / "fei-extended_crop512.mrc"), permissive=True) as mrc:
        np.testing.assert_array_equal(img, mrc.data.astype(np.float32))
    stack = map_header_info(folder / "other_repos" / "xmipp_smallStack.mrcs")
    assert stack["ispg"] == 0 and stack["sampling_mxyz"][2] == 1


def test_lowres_and_qscore_origins(shared_data):
    tempy = shared_data / "lowres" / "2dqj_10A_tempy.mrc"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the odd machine stamp must not leak a warning
        m = read_map(tempy)
    np.testing.assert_allclose(m.origin, [-8.607, -8.078, -23.115], atol=1e-3)  # origin beats nstart (-13,-13,-12)
    info = map_header_info(tempy)
    assert info["nstart"] == [-13, -13, -12] and info["origin_source"] == "header"
    assert any("machine stamp" in w for w in info["warnings"])
    emdb = read_map(shared_data / "lowres" / "emd_5168.map")
    np.testing.assert_allclose(emdb.origin, [-50 * 1.742] * 3, rtol=1e-6)
    q = read_map(shared_data / "qscore" / "emd30342_7cec_A" / "map.mrc")
    assert q.shape == (63, 81, 89)  # ispg 0 with nz > 1: still a volume
    np.testing.assert_allclose(q.origin, [145.825, 112.825, 120.517], atol=1e-3)
    np.testing.assert_allclose(q.voxel_size, [1.113] * 3, rtol=1e-6)
    mic, ps = read_micrograph(shared_data / "micrographs" / "ucsf_stack_1142" / "Ucsf_stack_1142_DW.mrc")
    assert mic.shape == (927, 959) and ps == 1.0
    assert 6768 < float(mic.min()) and float(mic.max()) < 6823
