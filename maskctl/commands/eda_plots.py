"""Matplotlib figures for the eda report.

Figures are made with `matplotlib.figure.Figure`, never pyplot: no GUI backend is touched, no
global figure list keeps them alive, and `savefig` renders PNGs with Agg. matplotlib is
imported inside each function so importing this module stays instant.
"""
from __future__ import annotations

from typing import Sequence

from maskctl.data import labels as L

MASK_COLOURS = ("tab:blue", "tab:orange", "tab:green")  # wear, incorrect, not_wear
GENDER_COLOURS = {"male": "tab:blue", "female": "tab:pink"}
THUMBNAIL = (96, 128)  # W x H, the real images' 3:4


def class_bars(names: Sequence[str], counts: Sequence[int]):
    """18 bars, coloured by mask status (class // 6), each labelled with its count."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4.5))
    axes = figure.add_subplot()
    colours = [MASK_COLOURS[L.decode(label)[0]] for label in range(len(names))]
    bars = axes.bar(range(len(names)), counts, color=colours)
    axes.bar_label(bars, fontsize=7)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("images")
    axes.set_title("images per class")
    axes.legend(handles=[Patch(color=c, label=n) for c, n in zip(MASK_COLOURS, L.MASK_NAMES)], fontsize=8)
    return figure


def age_histogram(people_per_age: Sequence[dict], age_edges: Sequence[int], band_names: Sequence[str]):
    """People per age, stacked by gender, with the band edges drawn where each band starts."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4))
    axes = figure.add_subplot()
    ages = [row["age"] for row in people_per_age]
    bottom = [0] * len(ages)
    for gender in L.GENDER_NAMES:
        heights = [row[gender] for row in people_per_age]
        axes.bar(ages, heights, bottom=bottom, width=0.9, color=GENDER_COLOURS[gender], label=gender)
        bottom = [b + h for b, h in zip(bottom, heights)]
    for edge in age_edges:
        # Bars are centred on whole ages, so the band starting at `edge` begins half a year left.
        axes.axvline(edge - 0.5, color="black", linestyle="--", linewidth=1)
    _label_bands(axes, ages, age_edges, band_names)
    axes.margins(y=0.15)  # headroom for the band names above the tallest bar
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("age")
    axes.set_ylabel("people")
    axes.set_title("people per age (dashed: age band edges)", loc="left")
    axes.legend(fontsize=8, ncols=2, frameon=False, loc="lower right", bbox_to_anchor=(1, 1))  # above the plot, off the bars
    return figure


def _label_bands(axes, ages: Sequence[int], age_edges: Sequence[int], band_names: Sequence[str]) -> None:
    """Each band's name at the middle of its stretch of the x axis."""
    from matplotlib.transforms import blended_transform_factory

    if not ages:
        return
    left, right = min(ages) - 0.5, max(ages) + 0.5
    bounds = [left, *(e - 0.5 for e in age_edges), right]
    at_top = blended_transform_factory(axes.transData, axes.transAxes)
    for name, start, end in zip(band_names, bounds, bounds[1:]):
        if start < end:  # a band with no ages in the data gets no label
            axes.text((start + end) / 2, 0.97, name, transform=at_top, ha="center", va="top", fontsize=9,
                      bbox=dict(facecolor="white", edgecolor="none", pad=1))


def image_grid(rows: Sequence[tuple[str, Sequence[tuple[str, str]]]]):
    """A grid of thumbnails. rows: (row label, [(caption, image path), ...]); an image that
    does not decode gets a grey cell saying so instead of failing the whole report."""
    from matplotlib.figure import Figure

    columns = max(len(cells) for _, cells in rows)
    figure = Figure(figsize=(1.3 * columns + 0.6, 1.8 * len(rows)))
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for r, (label, cells) in enumerate(rows):
        for c, axes in enumerate(grid[r]):
            axes.set_xticks([])
            axes.set_yticks([])
            if c >= len(cells):
                axes.set_axis_off()
                continue
            caption, path = cells[c]
            _draw_thumbnail(axes, path)
            axes.set_title(caption, fontsize=7)
        grid[r][0].set_ylabel(label, fontsize=7)
    return figure


def _draw_thumbnail(axes, path: str) -> None:
    from PIL import Image

    from maskctl.data.images import ImageDecodeError, load_rgb

    try:
        image = Image.fromarray(load_rgb(path))
    except ImageDecodeError:
        axes.set_facecolor("lightgrey")
        axes.text(0.5, 0.5, "cannot\ndecode", ha="center", va="center", fontsize=7, transform=axes.transAxes)
        return
    image.thumbnail(THUMBNAIL)
    axes.imshow(image)
