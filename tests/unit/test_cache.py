import json
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskctl.data import cache as C
from maskctl.data.images import ImageDecodeError, load_resized

SIZE = (24, 16)


def write_images(folder: Path, count=6, offset=0):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(offset)
    for i in range(count):
        pixels = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
        ext = [".jpg", ".png", ".jpeg"][i % 3]
        path = folder / f"img{i}{ext}"
        Image.fromarray(pixels).save(path, format="PNG" if ext == ".png" else "JPEG")
        paths.append(str(path))
    return paths


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKCTL_CACHE_DIR", str(tmp_path / "c"))
    assert C.cache_dir() == tmp_path / "c"


def test_open_cache_pixels_equal_load_resized(tmp_path):
    paths = write_images(tmp_path / "img")
    cache = C.open_cache(paths, SIZE, show_progress=False, directory=tmp_path / "cache")
    assert cache is not None
    assert len(cache) == len(paths)
    for i, path in enumerate(paths):
        image = cache.get(i)
        assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
        np.testing.assert_array_equal(image, load_resized(path, SIZE))
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    key = C.cache_key(paths, SIZE)
    assert f"{key}.u8" in files and f"{key}.json" in files
    assert (tmp_path / "cache" / f"{key}.u8").stat().st_size == len(paths) * SIZE[0] * SIZE[1] * 3
    assert json.loads((tmp_path / "cache" / f"{key}.json").read_text()) == {"images": 6, "size": list(SIZE), "crop": None, "version": C.CACHE_VERSION, "source": C.source_key(paths, SIZE), "unreadable": {}}


def test_open_cache_uses_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKCTL_CACHE_DIR", str(tmp_path / "env-cache"))
    paths = write_images(tmp_path / "img", count=2)
    cache = C.open_cache(paths, SIZE, show_progress=False)
    assert Path(cache.array_path).parent == tmp_path / "env-cache"


def test_second_open_reuses(tmp_path, monkeypatch):
    paths = write_images(tmp_path / "img", count=3)
    C.open_cache(paths, SIZE, show_progress=False, directory=tmp_path / "cache")

    def no_build(*args, **kwargs):
        raise AssertionError("a built cache must be reused")

    monkeypatch.setattr(C, "_build", no_build)
    again = C.open_cache(paths, SIZE, show_progress=False, directory=tmp_path / "cache")
    np.testing.assert_array_equal(again.get(2), load_resized(paths[2], SIZE))


def test_subset_maps_rows(tmp_path):
    paths = write_images(tmp_path / "img")
    cache = C.open_cache(paths, SIZE, show_progress=False, directory=tmp_path / "cache")
    sub = cache.subset([4, 1, 1])
    assert len(sub) == 3
    np.testing.assert_array_equal(sub.get(0), cache.get(4))
    np.testing.assert_array_equal(sub.get(1), cache.get(1))
    subsub = sub.subset([0])
    np.testing.assert_array_equal(subsub.get(0), load_resized(paths[4], SIZE))


def test_changed_source_gives_new_key_and_pixels(tmp_path):
    paths = write_images(tmp_path / "img", count=3)
    directory = tmp_path / "cache"
    first = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    old_key = C.cache_key(paths, SIZE)
    old_pixels = first.get(1)
    # rewrite image 1 with different pixels and move its mtime on
    Image.fromarray(np.full((40, 30, 3), 7, np.uint8)).save(paths[1], format="PNG")
    stat = os.stat(paths[1])
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    new_key = C.cache_key(paths, SIZE)
    assert new_key != old_key
    second = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    assert second.array_path != first.array_path
    np.testing.assert_array_equal(second.get(1), np.full((*SIZE, 3), 7, np.uint8))
    assert not np.array_equal(second.get(1), old_pixels)
    np.testing.assert_array_equal(second.get(0), first.get(0))
    # `first` is still open here, so the superseded cache stays; a rebuild once it is closed removes it
    assert (directory / f"{old_key}.u8").is_file()
    del first
    os.utime(paths[2], ns=(0, 10**18))
    third = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    newest = C.cache_key(paths, SIZE)
    assert not (directory / f"{old_key}.u8").exists()
    assert (directory / f"{new_key}.u8").is_file()  # `second` still reads it
    del second
    os.utime(paths[0], ns=(0, 2 * 10**18))
    C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    assert {p.stem for p in directory.glob("*.u8")} == {newest, C.cache_key(paths, SIZE)}  # `third` is still open
    assert third.get(0).shape == (*SIZE, 3)


def test_a_cache_in_use_by_a_worker_copy_survives_a_rebuild(tmp_path):
    """A DataLoader worker (a pickled copy) reopens the file by path after a rebuild elsewhere."""
    import pickle

    paths = write_images(tmp_path / "img", count=3)
    directory = tmp_path / "cache"
    cache = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    worker_copy = pickle.loads(pickle.dumps(cache.subset([2])))
    os.utime(paths[1], ns=(0, 10**18))
    C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    np.testing.assert_array_equal(worker_copy.get(0), load_resized(paths[2], SIZE))


def test_only_superseded_caches_are_removed(tmp_path):
    paths = write_images(tmp_path / "img", count=3)
    directory = tmp_path / "cache"
    for files, size in ((paths, SIZE), (paths, (12, 8)), (paths[:2], SIZE)):
        C.open_cache(files, size, show_progress=False, directory=directory)  # and closed again at once
    (directory / "unrelated.json").write_text("not json")
    others = {C.cache_key(paths, (12, 8)), C.cache_key(paths[:2], SIZE)}
    assert len(list(directory.glob("*.u8"))) == 3
    os.utime(paths[0], ns=(0, 10**18))
    C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    assert {p.stem for p in directory.glob("*.u8")} == others | {C.cache_key(paths, SIZE)}
    assert (directory / "unrelated.json").is_file()


def test_key_depends_on_size_and_order(tmp_path):
    paths = write_images(tmp_path / "img", count=2)
    assert C.cache_key(paths, (24, 16)) != C.cache_key(paths, (16, 24))
    assert C.cache_key(paths, SIZE) != C.cache_key(paths[::-1], SIZE)
    assert C.cache_key(paths, SIZE) == C.cache_key(list(paths), SIZE)


def _build_in_child(paths, directory, barrier, results, log):
    original = C._build

    def logged_build(*args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return original(*args, **kwargs)

    C._build = logged_build
    barrier.wait()
    cache = C.open_cache(paths, SIZE, show_progress=False, directory=Path(directory))
    results.put((os.getpid(), np.stack([cache.get(i) for i in range(len(cache))]).tobytes()))


def test_two_processes_build_once_and_agree(tmp_path):
    paths = write_images(tmp_path / "img", count=12)
    directory = tmp_path / "cache"
    log = tmp_path / "builds.log"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [context.Process(target=_build_in_child, args=(paths, str(directory), barrier, results, str(log))) for _ in range(2)]
    for w in workers:
        w.start()
    outputs = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    expected = np.stack([load_resized(p, SIZE) for p in paths]).tobytes()
    assert outputs[0][1] == outputs[1][1] == expected
    assert len(log.read_text().split()) == 1  # one builder; the other waited and reused
    names = [p.name for p in directory.iterdir()]
    assert len([n for n in names if n.endswith(".u8")]) == 1
    assert not [n for n in names if ".tmp" in n]


def test_image_cache_pickles_without_pixels(tmp_path):
    paths = write_images(tmp_path / "img", count=6)
    cache = C.open_cache(paths, (64, 48), show_progress=False, directory=tmp_path / "cache")
    cache.get(0)  # opens the memmap
    assert cache._array is not None
    blob = pickle.dumps(cache)
    assert len(blob) < 2048  # 6 images of 64x48x3 would be 55 KB
    clone = pickle.loads(blob)
    assert clone._array is None
    for i in range(6):
        np.testing.assert_array_equal(clone.get(i), cache.get(i))
    sub = pickle.loads(pickle.dumps(cache.subset([5, 2])))
    np.testing.assert_array_equal(sub.get(0), cache.get(5))


def test_a_damaged_image_is_recorded_not_fatal(tmp_path):
    """The build goes on past an image it cannot decode: a black row, the reason recorded and
    found again on reuse, the same verdict as the checking pass used without the cache; the
    samples then skip it and the cache rows follow."""
    import pandas as pd

    from maskctl.data.datasets import Samples
    from maskctl.data.unreadable import decode_errors, skip_unreadable

    paths = write_images(tmp_path / "imgs", count=4)
    Path(paths[1]).write_bytes(Path(paths[1]).read_bytes()[:60])
    directory = tmp_path / "cache"
    cache = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    assert list(cache.unreadable) == [1] and "img1" in cache.unreadable[1]
    assert not cache.get(1).any()
    assert C.open_cache(paths, SIZE, show_progress=False, directory=directory).unreadable == cache.unreadable
    assert decode_errors(paths, SIZE, show_progress=False) == cache.unreadable

    samples = Samples(pd.DataFrame({"image": [Path(p).name for p in paths], "path": paths, "person": list("abcd"), "label": 0}), 18, [])
    kept, images, skipped = skip_unreadable(samples, cache, cache.unreadable, strict=False, show=False)
    assert list(kept.table["image"]) == ["img0.jpg", "img2.jpeg", "img3.jpg"] and list(skipped["image"]) == ["img1.png"]
    np.testing.assert_array_equal(images.get(1), load_resized(paths[2], SIZE))
    with pytest.raises(ImageDecodeError, match="img1.png.*--strict"):
        skip_unreadable(samples, cache, cache.unreadable, strict=True, show=False)
    everything = {row: f"cannot decode image {path}: damaged" for row, path in enumerate(paths)}
    with pytest.raises(ImageDecodeError, match="none of the 4 training images can be decoded; the first: cannot decode image .*img0.jpg"):
        skip_unreadable(samples, cache, everything, strict=False, show=False)


def _build_slowly(paths, directory):
    import time

    def slow_load(path, size_hw, crop=None):
        time.sleep(0.2)
        return np.zeros((*size_hw, 3), np.uint8)

    C.load_resized = slow_load
    C.open_cache(paths, SIZE, show_progress=False, directory=directory)


def test_a_build_killed_by_sigkill_leaves_no_orphan_once_the_next_run_starts(tmp_path):
    import signal
    import time

    paths = write_images(tmp_path / "img")
    directory = tmp_path / "cache"
    builder = multiprocessing.get_context("fork").Process(target=_build_slowly, args=(paths, directory))
    builder.start()
    deadline = time.monotonic() + 30
    while not list(directory.glob("*.tmp*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(builder.pid, signal.SIGKILL)
    builder.join()
    assert [p.name for p in directory.glob("*.tmp*")] == [f"{C.cache_key(paths, SIZE)}.tmp{builder.pid}"]  # the orphan

    cache = C.open_cache(paths, SIZE, show_progress=False, directory=directory)
    assert cache is not None and np.array_equal(cache.get(0), load_resized(paths[0], SIZE))
    assert not list(directory.glob("*.tmp*"))


def test_a_live_builders_partial_array_is_kept(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir()
    live = directory / f"{'0' * 24}.tmp{os.getpid()}"
    live.write_bytes(b"\0" * 10)
    C.open_cache(write_images(tmp_path / "img"), SIZE, show_progress=False, directory=directory)
    assert live.is_file()
