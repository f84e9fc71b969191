"""Benchmarks from Python: `maskctl bench loader|train|predict|all` and `maskctl bench quality`,
the same measurements and the same bench.json / quality.json."""
from __future__ import annotations

import os
from typing import Sequence

from maskctl.api.door import as_path, optional_path, public

# what each speed measurement takes beyond data, out, device and overwrite (as its command's options)
SPEED_OPTIONS = {"loader": ("batches", "workers"), "train": ("batches", "model"), "predict": ("repeats",),
                 "all": ("batches", "workers", "model", "repeats")}


@public
def bench(what: str = "all", data: str | os.PathLike | None = None, out: str | os.PathLike = "bench-results", batches: int | None = None,
          workers: int | None = None, model: str | None = None, repeats: int | None = None, device: str | None = None,
          overwrite: bool = False, quiet: bool = False) -> dict:
    """Speed against the baseline way (`maskctl bench WHAT`): `what` is loader, train, predict or
    all; `data` your training folder (a synthetic set when None). Writes OUT/bench.json and
    returns its record. An option the measurement does not take (repeats for loader) is refused."""
    import difflib

    from maskctl.commands.bench import BATCHES, REPEATS, run_bench
    from maskctl.core.errors import UsageError

    if what not in SPEED_OPTIONS:
        close = difflib.get_close_matches(str(what), SPEED_OPTIONS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"maskctl.bench: what must be one of {', '.join(SPEED_OPTIONS)}, got {what!r}{hint}; "
                         "F1 against a plain loop is maskctl.bench_quality")
    given = {"batches": batches, "workers": workers, "model": model, "repeats": repeats}
    foreign = [name for name, value in given.items() if value is not None and name not in SPEED_OPTIONS[what]]
    if foreign:
        raise UsageError(f"maskctl.bench: the {what} measurement does not take {', '.join(foreign)}; "
                         f"it takes {', '.join(SPEED_OPTIONS[what])}")
    return run_bench(what, optional_path(data, "data"), as_path(out, "out"), BATCHES if batches is None else batches, workers, device, model,
                     overwrite, REPEATS if repeats is None else repeats)


@public
def bench_quality(data: str | os.PathLike | None = None, out: str | os.PathLike = "bench-results", config: str | os.PathLike = "cpu-score",
                  minutes: float = 10.0, styles: str | Sequence[str] = "real", seeds: str | Sequence[int] = "0,1",
                  train_seeds: str | Sequence[int] = "0", people: int = 240, eval_people: int = 80, image_size: str = "512x384",
                  device: str | None = None, overwrite: bool = False, quiet: bool = False) -> dict:
    """F1 against a plain PyTorch loop at equal wall time (`maskctl bench quality`): every
    synthetic style x data seed x training seed (or your training folder, `data`), each gap with
    its person-bootstrap interval, their mean and the worst. Writes OUT/quality.json and returns
    its record (rows, mean_gap, worst_gap, ...). Minutes to hours: `minutes` per arm and cell."""
    from maskctl.commands.bench_quality import parse_seeds, parse_styles, run_quality
    from maskctl.config import parse_size

    # The parsers' messages name --seeds and --train-seeds; the door respells them as these keywords.
    return run_quality(as_path(out, "out"), str(as_path(config, "config")), minutes, parse_seeds(_as_text(seeds, "seeds")), people,
                       eval_people, parse_size(str(image_size)), device, overwrite, styles=parse_styles(_as_text(styles, "styles")),
                       train_seeds=parse_seeds(_as_text(train_seeds, "train_seeds"), "--train-seeds"), data=optional_path(data, "data"))


def _as_text(values: str | Sequence, what: str) -> str:
    """'0,1' or [0, 1] -> '0,1': the command's parser checks both alike."""
    from maskctl.core.errors import UsageError, shown

    if isinstance(values, str):
        return values
    if not isinstance(values, (list, tuple)):
        raise UsageError(f"{what} must be a list or a comma-separated text, e.g. [0, 1] or '0,1'; got {shown(values)}")
    return ",".join(str(value) for value in values)
