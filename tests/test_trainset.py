"""Training-set folders: round trips, atomic adds, backups, damage and mismatch errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from skinseg import progress
from skinseg.classes import NERVE_CLASSES, OCT_CLASSES, TISSUE_CLASSES
from skinseg.errors import SkinsegInputError
from skinseg.io.image_data import ImageData
from skinseg.io.masks import band_mask_to_labels
from skinseg.io.rgb import read_raster
from skinseg.synth.oct import oct_phantom
from skinseg.train import TrainingSet, import_mask_folder, is_training_set, new_model_info, slices_from_pairs
from skinseg.train import _trainset_store as store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FACE = DATA / "skin-oct-face-dev"
FIXED = {"kind": "fixed", "low": 0, "high": 1}


def _volume(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 24)).astype(np.float32)


def _layers(rows: int = 32, cols: int = 24, surface: int = 8, dej: int = 16) -> np.ndarray:
    lab = np.zeros((rows, cols), np.uint8)
    lab[surface:dej], lab[dej:] = 4, 6
    return lab


@pytest.fixture
def oct_set(tmp_path):
    return TrainingSet.create(tmp_path / "set", OCT_CLASSES, modality="oct")


def test_bscan_round_trip(oct_set, tmp_path):
    image, labels = _volume(1)[0], _layers()
    report = oct_set.add(image, labels, pixel_size_um=(3.0, 5.0), source="scan.tif")
    assert (report.slices, report.skipped, report.added) == (1, 0, ("p0001",))
    again = TrainingSet.open(tmp_path / "set")
    info = again.info()
    assert (info.n_pairs, info.n_slices, info.pixel_size_um) == (1, 1, (3.0, 5.0))
    assert info.pixels_per_class == {c.name: int((labels == c.value).sum()) for c in OCT_CLASSES.classes}
    assert "epidermis" in str(info) and "3 × 5 µm" in str(info)
    slices = again.slices()
    direct = slices_from_pairs([(image, labels)], OCT_CLASSES)
    assert slices.keys[0].source == "scan.tif" and slices.keys[0].index == 0
    np.testing.assert_array_equal(slices.images[0], direct.images[0])
    np.testing.assert_array_equal(slices.labels[0], direct.labels[0])


def test_tomogram_keeps_annotated_slices_only(oct_set):
    volume, labels = _volume(6), np.zeros((6, 32, 24), np.uint8)
    labels[1], labels[4] = _layers(), _layers(surface=4, dej=20)
    report = oct_set.add(ImageData(volume, (20.0, 3.0, 5.0), source="vol.tif"), labels)
    assert (report.slices, report.skipped) == (2, 4)
    [record] = oct_set.pairs
    assert record["source"] == "vol.tif" and record["annotated"] == [1, 4] and record["shape"] == [2, 32, 24]
    assert oct_set.info().pixels_per_class["epidermis"] == int((labels == 4).sum())
    slices = oct_set.slices(normalisation=FIXED)
    assert [k.index for k in slices.keys] == [1, 4]
    np.testing.assert_array_equal(slices.images[1][0], volume[4])
    # "add current slice": only slice 1, again, replaces it and leaves slice 4
    report = oct_set.add(ImageData(volume, (20.0, 3.0, 5.0), source="vol.tif"), labels, slices=[1])
    assert (report.slices, report.replaced) == (1, 1)
    assert sorted(i for r in oct_set.pairs for i in r["annotated"]) == [1, 4]
    assert oct_set.pairs[-1]["pixel_size_um"] == [3.0, 5.0]
    oct_set.add(volume, labels, pixel_size_um=(3.0, 5.0), source="layer")  # a stack given its slices' size
    assert oct_set.info().n_slices == 4


def test_context_slices_feed_neighbour_channels(tmp_path):
    ts = TrainingSet.create(tmp_path / "ctx", OCT_CLASSES, modality="oct", context=1)
    volume, labels = _volume(10), np.zeros((10, 32, 24), np.uint8)
    labels[2], labels[7], labels[9] = _layers(), _layers(), _layers()
    ts.add(volume, labels, source="vol")
    assert ts.pairs[0]["slices"] == [1, 2, 3, 6, 7, 8, 9]
    stored = ts.slices(normalisation=FIXED, neighbours=1)
    whole = slices_from_pairs([(volume, labels, "vol")], OCT_CLASSES, normalisation=FIXED, neighbours=1)
    assert stored.keys == whole.keys
    for a, b in zip(stored.images, whole.images):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(SkinsegInputError, match="context"):
        ts.slices(neighbours=2)


def test_model_with_a_surface_window_gets_flattened_slices(tmp_path):
    """Fine-tuning a surface-window model from a folder flattens as from in-memory pairs."""
    phantom = oct_phantom((3, 96, 48), seed=4)
    ts = TrainingSet.create(tmp_path / "win", OCT_CLASSES, modality="oct")
    ts.add(phantom.image, phantom.labels, pixel_size_um=phantom.pixel_size_um, source="ph")
    window = {"above": 4, "rows": 32}
    sizes = phantom.pixel_size_um[-2:]
    whole = slices_from_pairs([(phantom.image, phantom.labels, "ph")], OCT_CLASSES, surface_window=window,
                              pixel_size_um=sizes)
    info = new_model_info(whole, name="w", task="oct-layers", arguments={"channels": [4, 8], "strides": [2]})
    stored = ts.slices(model=info)
    assert stored.surface_window == window and stored.labels[0].shape == (32, 48)
    for a, b in zip(stored.labels, whole.labels):
        np.testing.assert_array_equal(a, b)


def test_rgb_set(tmp_path):
    ts = TrainingSet.create(tmp_path / "rgb", TISSUE_CLASSES, modality="rgb")
    image = np.random.default_rng(1).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    labels = np.zeros((40, 30), np.uint8)
    labels[:10], labels[10:] = 1, 2
    ts.add(ImageData(image, (0.5, 0.5), rgb=True, source="biopsy.png"), labels)
    slices = TrainingSet.open(tmp_path / "rgb").slices()
    assert (slices.in_channels, slices.modality, len(slices)) == (3, "rgb", 1)
    np.testing.assert_allclose(slices.images[0], np.moveaxis(image, -1, 0) / 255, atol=1e-6)
    with pytest.raises(SkinsegInputError, match="grey image cannot join the rgb"):
        ts.add(image[..., 0], labels, source="grey.png")


def test_mismatches_are_refused(oct_set, tmp_path):
    oct_set.add(_volume(1)[0], _layers(), pixel_size_um=(3.0, 5.0), source="a")
    with pytest.raises(SkinsegInputError, match="do not match"):
        oct_set.add(_volume(1)[0], _layers(rows=30), source="b")
    with pytest.raises(SkinsegInputError, match=r"values \[9\]"):
        oct_set.add(_volume(1)[0], np.full((32, 24), 9, np.uint8), source="c")
    with pytest.raises(SkinsegInputError, match="far from"):
        oct_set.add(_volume(1)[0], _layers(), pixel_size_um=(3.0, 10.0), source="d")
    rgb = ImageData(np.zeros((32, 24, 3), np.uint8), (3.0, 5.0), rgb=True, source="photo.png")
    with pytest.raises(SkinsegInputError, match="colour .*cannot join the oct"):
        oct_set.add(rgb, _layers())
    with pytest.raises(SkinsegInputError, match="NaN"):
        oct_set.add(np.full((32, 24), np.nan, np.float32), _layers(), source="e")
    with pytest.raises(SkinsegInputError, match="not oct with 'biopsy-nerves'"):
        TrainingSet.open_or_create(tmp_path / "set", NERVE_CLASSES, modality="oct")
    assert oct_set.info().n_pairs == 1  # nothing half-added
    report = oct_set.add(_volume(1)[0], np.zeros((32, 24), np.uint8), source="blank")
    assert report.slices == 0 and "nothing added" in str(report)


def test_replacing_keeps_a_backup(oct_set, tmp_path):
    image = _volume(1)[0]
    oct_set.add(image, _layers(dej=16), source="scan")
    report = oct_set.add(image, _layers(dej=20), source="scan")
    assert report.replaced == 1 and len(report.backups) == 1
    [record] = oct_set.pairs
    assert record["id"] == "p0002"
    backup = tifffile.imread(report.backups[0] / store.LABELS_FILE)
    np.testing.assert_array_equal(backup, _layers(dej=16))
    np.testing.assert_array_equal(oct_set.slices().labels[0], slices_from_pairs([(image, _layers(dej=20))],
                                                                                OCT_CLASSES).labels[0])
    oct_set.add(image, _layers(), source="")  # an unnamed add never replaces
    assert oct_set.info().n_pairs == 2
    TrainingSet.open(tmp_path / "set").add(image, _layers(), source="other window")
    oct_set.add(image, _layers(), source="this window")  # sees the other window's pair
    assert [r["source"] for r in TrainingSet.open(tmp_path / "set").pairs][-2:] == ["other window", "this window"]


def test_failed_add_leaves_the_previous_set(oct_set, tmp_path, monkeypatch):
    oct_set.add(_volume(1)[0], _layers(), source="first")
    before = (tmp_path / "set" / store.MANIFEST).read_text()

    def broken(path, *args, **kwargs):  # the image is written, then the labels fail
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(store, "write_labels", broken)
    with pytest.raises(OSError, match="disk full"):
        oct_set.add(_volume(1)[0], _layers(), source="second")
    monkeypatch.undo()
    assert (tmp_path / "set" / store.MANIFEST).read_text() == before
    assert sorted(p.name for p in (tmp_path / "set" / store.PAIRS).iterdir()) == ["p0001"]
    reopened = TrainingSet.open(tmp_path / "set")
    assert [r["source"] for r in reopened.pairs] == ["first"] and len(reopened.slices()) == 1

    # a crash after the pair folder was renamed into place but before the manifest
    monkeypatch.setattr(store, "write_manifest", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        reopened.add(_volume(1)[0], _layers(), source="third")
    monkeypatch.undo()
    assert [r["source"] for r in reopened.pairs] == ["first"]  # memory matches disk
    (tmp_path / "set" / store.PAIRS / f"{store.TMP_PREFIX}p0009-1-2").mkdir()  # killed mid-write
    (tmp_path / "set" / ".manifest.json.abc.tmp").write_text("{")
    with pytest.warns(UserWarning, match="interrupted add"):
        healed = TrainingSet.open(tmp_path / "set")
    assert [r["source"] for r in healed.pairs] == ["first"]
    assert sorted(p.name for p in (tmp_path / "set" / store.PAIRS).iterdir()) == ["p0001"]
    assert [p.name[:5] for p in (tmp_path / "set" / store.BACKUPS).iterdir()] == ["p0002"]
    assert not list((tmp_path / "set").glob(".*.tmp"))


def test_damaged_or_missing_sets(oct_set, tmp_path):
    oct_set.add(_volume(1)[0], _layers(), source="a")
    folder = tmp_path / "set"
    with pytest.raises(SkinsegInputError, match="no such training-set folder"):
        TrainingSet.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkinsegInputError, match="not a training set"):
        TrainingSet.open(tmp_path / "empty")
    assert is_training_set(folder) and not is_training_set(tmp_path / "empty")
    with pytest.raises(SkinsegInputError, match="already holds"):
        TrainingSet.create(folder, OCT_CLASSES, modality="oct")
    (folder / store.PAIRS / "p0001" / store.IMAGE_FILE).write_bytes(b"not a tiff")
    with pytest.raises(SkinsegInputError, match=r"damaged training set: pair p0001 cannot be read"):
        TrainingSet.open(folder).slices()
    (folder / store.PAIRS / "p0001" / store.IMAGE_FILE).unlink()
    with pytest.raises(SkinsegInputError, match=r"set.*names pair 'p0001'.*missing"):
        TrainingSet.open(folder)
    manifest = folder / store.MANIFEST
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(SkinsegInputError, match=r"set: damaged training set: manifest.json is unreadable"):
        TrainingSet.open(folder)


def test_empty_set_cannot_train(oct_set):
    with pytest.raises(SkinsegInputError, match="no annotated slices in .*set"):
        oct_set.slices()


def test_import_label_masks(tmp_path, oct_set):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i in range(3):
        tifffile.imwrite(images / f"b{i + 1}.tif", (_volume(1, seed=i)[0] * 1000).astype(np.uint16))
        tifffile.imwrite(masks / f"b{i + 1}.tif", _layers(dej=12 + i))
    report = progress.run(import_mask_folder(oct_set, images, masks, pixel_size_um=(3.0, 5.0)))
    assert (report.slices, len(report.added)) == (3, 3)
    slices = oct_set.slices()
    assert [k.index for k in slices.keys] == [0, 1, 2] and {k.source for k in slices.keys} == {str(images)}
    assert oct_set.info().pixel_size_um == (3.0, 5.0)
    unknown = TrainingSet.create(tmp_path / "unknown", OCT_CLASSES, modality="oct")
    report = progress.run(import_mask_folder(unknown, images, masks))
    assert unknown.info().pixel_size_um is None and "pixel size not recorded" in str(report)
    (masks / "b2.tif").unlink()
    with pytest.raises(SkinsegInputError, match="no mask for 1 image"):
        progress.run(import_mask_folder(oct_set, images, masks))
    with pytest.raises(SkinsegInputError, match="mask kind"):
        progress.run(import_mask_folder(oct_set, images, masks, kind="outline"))


@pytest.mark.skipif(not FACE.is_dir(), reason=f"real face-dev OCT data not found at {FACE}")
def test_import_face_dev_band_masks(tmp_path):
    ts = TrainingSet.create(tmp_path / "face", OCT_CLASSES, modality="oct")
    work = import_mask_folder(ts, FACE / "images", FACE / "masks", kind="epidermis-band", pixel_size_um=(2.4, 3.0))
    steps = []
    report = progress.run(work, lambda *step: steps.append(step))
    info = ts.info()
    assert (len(report.added), info.n_pairs, info.n_slices, info.n_sources) == (60, 60, 60, 1)
    assert steps[-1][:2] == (60, 60)
    assert info.pixels_per_class["glass"] == 0 and info.pixels_per_class["epidermis"] > 0
    first = ts.pairs[0]
    assert first["file"] == "0001.pgm" and first["slices"] == [0]
    stored = tifffile.imread(tmp_path / "face" / store.PAIRS / first["id"] / store.LABELS_FILE)
    mask = read_raster(FACE / "masks" / "0001.png")
    np.testing.assert_array_equal(stored, band_mask_to_labels(mask))


@pytest.fixture
def three_pairs(oct_set):
    """A set of three B-scans, sources a, b, c (pairs p0001-p0003), with different DEJs."""
    for i, source in enumerate("abc"):
        oct_set.add(_volume(1, seed=i)[0], _layers(dej=14 + 2 * i), source=source)
    return oct_set


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_remove_moves_pairs_to_backups(three_pairs, tmp_path):
    folder = tmp_path / "set"
    labels_b = (folder / store.PAIRS / "p0002" / store.LABELS_FILE).read_bytes()
    assert three_pairs.info().pair_lines()[1].split() == ["p0002", "slice(s)", "0", "b"]
    report = three_pairs.remove(["p0002"])
    assert (report.removed, report.slices) == (("p0002",), 1) and "p0002" in str(report)
    [backup] = report.backups
    assert backup.parent == folder / store.BACKUPS and backup.name.startswith("p0002-")
    assert (backup / store.LABELS_FILE).read_bytes() == labels_b  # moved whole, not rewritten
    assert sorted(p.name for p in (folder / store.PAIRS).iterdir()) == ["p0001", "p0003"]
    assert [r["id"] for r in three_pairs.pairs] == ["p0001", "p0003"]
    assert [k.source for k in three_pairs.slices().keys] == ["a", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to heal
        reopened = TrainingSet.open(folder)
    assert [r["source"] for r in reopened.pairs] == ["a", "c"] and reopened.info().n_slices == 2
    np.testing.assert_array_equal(reopened.slices().labels[1], slices_from_pairs([(_volume(1, seed=2)[0],
                                                                                   _layers(dej=18))],
                                                                                 OCT_CLASSES).labels[0])
    # removing every pair leaves a valid, empty set that takes new pairs
    assert reopened.remove(["p0003", "p0001", "p0001"]).removed == ("p0001", "p0003")
    empty = TrainingSet.open(folder)
    assert (empty.info().n_pairs, empty.info().pair_lines()) == (0, [])
    assert len(list((folder / store.BACKUPS).iterdir())) == 3
    assert empty.add(_volume(1)[0], _layers(), source="d").added == ("p0004",)  # ids are never reused


def test_unknown_pair_ids_change_nothing(three_pairs, tmp_path):
    folder = tmp_path / "set"
    before = _files(folder)
    with pytest.raises(SkinsegInputError, match=r"set: no pair p0042 in .*its pairs are p0001, p0002, p0003\."):
        three_pairs.remove(["p0002", "p0042"])
    assert _files(folder) == before and not (folder / store.BACKUPS).exists()
    assert [r["id"] for r in three_pairs.pairs] == ["p0001", "p0002", "p0003"]
    assert three_pairs.remove([]).removed == () and _files(folder) == before


def test_interrupted_remove_heals_on_open(three_pairs, tmp_path, monkeypatch):
    folder = tmp_path / "set"
    kept = {i: (folder / store.PAIRS / i / store.LABELS_FILE).read_bytes() for i in ("p0001", "p0003")}
    back_up, calls = store.back_up, []

    def dies_on_second(*args):  # the manifest is written and one folder moved, then the process dies
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return back_up(*args)

    monkeypatch.setattr(store, "back_up", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        three_pairs.remove(["p0001", "p0003"])
    monkeypatch.undo()
    assert [r["id"] for r in three_pairs.pairs] == ["p0002"]  # memory matches the manifest on disk
    assert sorted(p.name for p in (folder / store.PAIRS).iterdir()) == ["p0002", "p0003"]
    with pytest.warns(UserWarning, match="moved unlisted pair p0003 to backups.*interrupted add or remove"):
        healed = TrainingSet.open(folder)
    assert [r["source"] for r in healed.pairs] == ["b"] and [k.source for k in healed.slices().keys] == ["b"]
    assert sorted(p.name for p in (folder / store.PAIRS).iterdir()) == ["p0002"]
    backups = {p.name[:5]: p for p in (folder / store.BACKUPS).iterdir()}
    assert {i: (p / store.LABELS_FILE).read_bytes() for i, p in backups.items()} == kept  # nothing lost
