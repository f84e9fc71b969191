import os
import time

import numpy as np
import pytest
from PIL import Image

from maskctl.data.images import ImageDecodeError, load_resized
from maskctl.data.prefetch import DecodeAll, Prefetcher

SIZE = (24, 16)
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="prefetching needs fork")


def write_jpegs(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def wait_ready(prefetch, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while prefetch.ready_count() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return prefetch.ready_count()


def test_prefetched_pixels_equal_direct_decoding(tmp_path):
    paths = write_jpegs(tmp_path, 5)
    prefetch = Prefetcher(paths, SIZE)
    assert wait_ready(prefetch, 5) == 5  # decoded by the child, before anyone asked
    for i, path in enumerate(paths):
        assert np.array_equal(prefetch.get(i), load_resized(path, SIZE))


def test_images_past_the_budget_are_decoded_on_demand(tmp_path):
    paths = write_jpegs(tmp_path, 5)
    prefetch = Prefetcher(paths, SIZE, budget_bytes=2 * SIZE[0] * SIZE[1] * 3)
    assert prefetch.ahead == 2
    prefetch.stop()
    assert prefetch.ready_count() <= 2
    for i, path in enumerate(paths):
        assert np.array_equal(prefetch.get(i), load_resized(path, SIZE))


def test_stop_reaps_the_child_and_keeps_what_it_decoded(tmp_path):
    paths = write_jpegs(tmp_path, 3)
    prefetch = Prefetcher(paths, SIZE)
    child = prefetch._child
    wait_ready(prefetch, 3)
    prefetch.stop()
    prefetch.stop()  # idempotent
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # already reaped: no zombie left behind
    assert prefetch.ready_count() == 3
    assert np.array_equal(prefetch.get(2), load_resized(paths[2], SIZE))


def test_a_bad_file_is_raised_by_the_parent_with_its_name(tmp_path):
    paths = write_jpegs(tmp_path, 3)
    (tmp_path / "img1.jpg").write_bytes(b"not a jpeg")
    prefetch = Prefetcher(paths, SIZE)
    assert wait_ready(prefetch, 2, timeout=5) == 2  # the child skipped the bad one
    prefetch.stop()
    assert np.array_equal(prefetch.get(0), load_resized(paths[0], SIZE))
    with pytest.raises(ImageDecodeError, match="img1.jpg"):
        prefetch.get(1)


def test_no_paths_starts_no_child():
    prefetch = Prefetcher([], SIZE)
    assert prefetch._child is None
    prefetch.stop()


def test_a_pickled_copy_decodes_for_itself(tmp_path):
    """What a spawned DataLoader worker receives: no shared pixels, the same images."""
    import pickle

    paths = write_jpegs(tmp_path, 3)
    prefetch = Prefetcher(paths, SIZE)
    copy = pickle.loads(pickle.dumps(prefetch))
    prefetch.stop()
    assert copy.ready_count() == 0
    assert np.array_equal(copy.get(1), load_resized(paths[1], SIZE))


@pytest.mark.parametrize("sidecar, expected", [
    ('{"size": [64, 48], "decode_size": [72, 54]}', ((72, 54), None)),
    ('{"size": [64, 48]}', ((64, 48), None)),
    ('{"size": [64, 48], "crop": [0.7, 0.8]}', ((64, 48), (0.7, 0.8))),
    ('{"size": [64, 48], "crop": [0.7, 2]}', None),
    ("{not json", None),
    ('{"size": "64x48"}', None),
    ("[1, 2]", None),
    (None, None),
])
def test_the_sidecar_only_starts_decoding_early_when_it_makes_sense(tmp_path, sidecar, expected):
    from maskctl.infer.fold_models import sidecar_decoding

    if sidecar is not None:
        (tmp_path / "best.json").write_text(sidecar)
    assert sidecar_decoding(tmp_path / "best.pt") == expected


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_the_child_stops_when_its_parent_dies(tmp_path):
    """A killed predict must not leave a decoder behind: the child watches its parent."""
    import signal
    import subprocess
    import sys

    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 384, 3), dtype=np.uint8)).save(big)
    script = (
        "import time\n"
        "from maskctl.data.prefetch import Prefetcher\n"
        f"p = Prefetcher([{str(big)!r}] * 5000, (512, 384), budget_bytes=2**31)\n"  # many seconds of full-size decodes
        "while p.ready_count() < 5: time.sleep(0.01)\n"
        "print(p._child, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _running(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 3  # far less than the decoding left
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.02)
    assert not _running(child)


def test_decode_all_splits_the_images_over_children_and_keeps_their_order(tmp_path):
    paths = write_jpegs(tmp_path, 7)
    decoded = DecodeAll(paths, SIZE, processes=3)
    assert [len(part.paths) for part in decoded.parts] == [3, 2, 2]
    decoded.join()
    assert all(part._child is None for part in decoded.parts)  # reaped, not stopped half-way
    assert sum(part.ready_count() for part in decoded.parts) == 7  # all decoded by the children
    for i, path in enumerate(paths):
        assert np.array_equal(decoded.get(i), load_resized(path, SIZE))


def test_images_the_children_did_not_decode_are_decoded_by_the_parent(tmp_path):
    paths = write_jpegs(tmp_path, 5)
    decoded = DecodeAll(paths, SIZE, processes=2)
    for part in decoded.parts:  # as if no child had decoded anything (a budget too small, a child killed)
        part.stop()
        part._status[1:] = 0
    for i, path in enumerate(paths):
        assert np.array_equal(decoded.get(i), load_resized(path, SIZE))


def test_decode_all_stop_reaps_every_child_and_keeps_get_working(tmp_path):
    """What predict does when the export fails a check after decoding started."""
    paths = write_jpegs(tmp_path, 40)
    decoded = DecodeAll(paths, SIZE, processes=2)
    children = [part._child for part in decoded.parts]
    decoded.stop()
    assert all(part._child is None for part in decoded.parts)
    for pid in children:  # already reaped: no child of that id is left to wait for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert np.array_equal(decoded.get(39), load_resized(paths[39], SIZE))
