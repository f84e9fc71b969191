"""A built-in synthetic data set in exactly the competition layout, so demos and tests need no real data.

    OUT/train/train.csv                                id,gender,race,age,path
    OUT/train/images/<id>_<gender>_Asian_<age>/{mask1..mask5,incorrect_mask,normal}.jpg
    OUT/eval/info.csv                                  ImageID,ans (ans = 0, a placeholder)
    OUT/eval/images/<sha1>.jpg                         flat, hashed names
    OUT/eval/answers.csv                               ImageID,ans with the true label
    OUT/synth.json                                     the parameters; marks OUT as synthetic
    OUT/train/injected_noise.csv                       with label_noise > 0: the label errors written on purpose

With `label_noise`, that share of training people get the label errors the real data has: a
whole person's gender flipped, a whole person's age moved to another band (in train.csv and the
folder name), or their `normal` and `incorrect_mask` files swapped. The pictures show the truth;
injected_noise.csv says what was written and what is true, to check `maskctl audit` against.

The pictures are cartoon faces, learnable the way the real task is: each person keeps one
identity across their 7 pictures (so a per-image split leaks it), the gender cue is noisy and
the age cues change smoothly with age, so 58 vs 60 stays hard while 20 vs 50 is easy.

A style (`SynthStyle`, or one of the named STYLES) changes what differs between real data sets:
how visible age and gender are, the age distribution, photo conditions (light, blur, tilt,
framing, background clutter) and clothes that do or do not go with the labels. A lever judged on
one look of the data can lose on another; `maskctl bench quality --styles` judges it on several.
The default style draws today's pictures byte for byte: every new draw comes from a stream of
its own, taken only when a knob is off its default.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from maskctl.core.console import track
from maskctl.core.errors import MaskctlError
from maskctl.core.io import prepare_output_dir, write_csv, write_text
from maskctl.data import labels as L

# Real training people per (gender, age band): the proportions the synthetic roster follows.
REAL_GROUP_PEOPLE = {
    (0, 0): 549, (0, 1): 410, (0, 2): 83,
    (1, 0): 732, (1, 1): 817, (1, 2): 109,
}
GROUPS = tuple(REAL_GROUP_PEOPLE)

# Ages per band. Young people are mostly students (skewed to 18-22); the middle band has the
# real bump of parents aged 50-59, 58 above all; nobody in the real data is over 60.
YOUNG_AGES = {age: 0.8 ** (age - 18) for age in range(18, 30)}
MIDDLE_AGES = {**{a: 1.0 for a in range(30, 40)}, **{a: 2.0 for a in range(40, 50)},
               **{a: 4.0 for a in range(50, 58)}, 58: 9.0, 59: 5.0}
OLD_AGE = 60

# Quirks of the real files, as shares of people (at least one person each when quirks are on).
PNG_SHARE = 0.03
JPEG_EXT_SHARE = 0.02
RESOURCE_FORK_SHARE = 0.02
PNG_MODES = ("RGBA", "RGB", "P")  # the real PNGs include RGBA and palette images
# What a macOS resource fork starts with (AppleDouble magic); readers must skip these files.
RESOURCE_FORK_BYTES = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "

JPEG_QUALITY = 90
MIN_SIDE = 16
MARKER = "synth.json"

# Independent random streams, so that e.g. the eval people do not change the train people.
TRAIN_ROSTER, EVAL_ROSTER, PERSON_STREAM, QUIRK_STREAM, NOISE_STREAM, STYLE_STREAM = 1, 2, 3, 4, 5, 6

NOISE_KINDS = ("gender", "age-band", "mask-swap")  # the kinds `maskctl audit` reports, by the same names
NOISE_FILE = "injected_noise.csv"
MAX_LABEL_NOISE = 0.5  # beyond half the people the "errors" are the labels

GREY_HAIR = (205.0, 203.0, 198.0)
LIGHT_SKIN, DARK_SKIN = (240.0, 208.0, 184.0), (182.0, 138.0, 108.0)
MASK_COLOURS = ((235, 235, 238), (35, 35, 40), (90, 140, 215), (150, 200, 225), (230, 170, 185), (120, 120, 125))
MASK_PATTERNS = ("plain", "stripes", "dots", "trim")


@dataclass(frozen=True)
class SynthStyle:
    """What differs between data sets, beyond who is in them. The defaults are today's pictures."""

    age_cue: float = 1.0  # how visible age is (grey hair, wrinkles): 0.5 doubles the per-person noise around the age's cue
    gender_cue: float = 1.0  # how visible gender is: scales the brow and face-width gaps; the hair rule's exceptions (10 % at 1) grow as it falls
    ages: str = "real"  # real: students, a bump at 50-59, the old band exactly 60 (as the real data); flat: uniform in 18-29, 30-59, 60-69
    light: float = 0.0  # extra brightness change (+- this share) and a colour cast, per picture
    blur: float = 0.0  # share of pictures blurred (radius up to 1 % of the height)
    rotation: float = 0.0  # head tilt of each picture, up to +- this many degrees
    framing: float = 0.0  # face position (+- this share of the size) and scale (+- twice it), per picture
    clutter: int = 0  # shapes on each person's background
    clothes: str = "random"  # random, or leak: clothes colour goes with gender and age band (uniforms, tracksuits)

    def check(self) -> None:
        ranges = {"age_cue": (0.1, 10), "gender_cue": (0.1, 10), "light": (0, 0.6), "blur": (0, 1), "rotation": (0, 45), "framing": (0, 0.2),
                  "clutter": (0, 50)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise MaskctlError(f"synth style: {name} must be from {low:g} to {high:g}, got {value:g}")
        if self.ages not in AGE_DISTRIBUTIONS:
            raise MaskctlError(f"synth style: ages must be one of {', '.join(AGE_DISTRIBUTIONS)}, got {self.ages!r}")
        if self.clothes not in CLOTHES:
            raise MaskctlError(f"synth style: clothes must be one of {', '.join(CLOTHES)}, got {self.clothes!r}")

    def changed(self) -> dict:
        """The knobs off their defaults (what synth.json records)."""
        return {k: v for k, v in asdict(self).items() if v != getattr(DEFAULT_STYLE, k)}

    def conditions(self) -> bool:
        """Whether pictures get any per-picture photo condition beyond today's."""
        return bool(self.light or self.blur or self.rotation or self.framing)


AGE_DISTRIBUTIONS = ("real", "flat")
CLOTHES = ("random", "leak")
DEFAULT_STYLE = SynthStyle()
# Named styles for `synth --style` and `bench quality --styles`: each a different look of the task.
STYLES = {
    "real": DEFAULT_STYLE,  # the cues and ages of the real data as this generator draws them
    "easy": SynthStyle(age_cue=2.0, gender_cue=2.0),
    "hard": SynthStyle(age_cue=0.5, gender_cue=0.6, ages="flat", light=0.25, blur=0.3, rotation=10, framing=0.06, clutter=6),
    "wild": SynthStyle(age_cue=0.8, light=0.35, blur=0.5, rotation=15, framing=0.1, clutter=12, clothes="leak"),
}
STYLE_KNOBS = tuple(f.name for f in fields(SynthStyle))


def parse_style(text: str) -> SynthStyle:
    """'hard' or 'hard,blur=0.5' or 'age_cue=0.5,clutter=8': a named style (default real) with knobs over it."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    style = DEFAULT_STYLE
    if parts and "=" not in parts[0]:
        name = parts.pop(0)
        if name not in STYLES:
            import difflib

            close = difflib.get_close_matches(name, STYLES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise MaskctlError(f"unknown synth style {name[:40]!r}: use one of {', '.join(STYLES)}, optionally with knobs (hard,blur=0.5){hint}")
        style = STYLES[name]
    for part in parts:
        key, _, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in STYLE_KNOBS:
            raise MaskctlError(f"unknown synth style knob {key[:40]!r}: use {', '.join(STYLE_KNOBS)}")
        kind = type(getattr(DEFAULT_STYLE, key))
        try:
            style = replace(style, **{key: kind(value.strip()) if kind is not int else int(float(value))})
        except ValueError:
            raise MaskctlError(f"synth style knob {key} takes a {kind.__name__}, got {value.strip()[:40]!r}") from None
    style.check()
    return style


@dataclass
class SynthSummary:
    out: Path
    train_people: int
    eval_people: int
    train_images: int
    eval_images: int
    class_counts: list[int]  # 18 counts over the train images
    seconds: float
    injected: int = 0  # people given a label error on purpose (label_noise)


def person_id(number: int) -> str:
    """The id a person's number gets in train.csv (and in the eval people's map)."""
    return f"{number:06d}"


@dataclass(frozen=True)
class Person:
    number: int  # unique over train and eval; seeds the person's own random stream
    gender: int
    age: int

    @property
    def id(self) -> str:
        return person_id(self.number)

    @property
    def folder(self) -> str:
        return f"{self.id}_{L.GENDER_NAMES[self.gender]}_Asian_{self.age}"

    def label(self, mask_kind: str) -> int:
        return int(L.encode(L.MASK_KIND_TO_STATUS[mask_kind], self.gender, L.age_band(self.age)))


@dataclass(frozen=True)
class InjectedError:
    """A label error written on purpose: the pictures show `true`, the files say `written`."""

    true: Person
    kind: str  # one of NOISE_KINDS
    written: Person  # train.csv and the folder name; the same person for a mask swap

    def file_kind(self, mask_kind: str) -> str:
        """The file a picture of `mask_kind` is saved as."""
        if self.kind == "mask-swap" and mask_kind in SWAPPED:
            return SWAPPED[mask_kind]
        return mask_kind

    def record(self) -> dict:
        if self.kind == "gender":
            written, true = L.GENDER_NAMES[self.written.gender], L.GENDER_NAMES[self.true.gender]
        elif self.kind == "age-band":
            written, true = str(self.written.age), str(self.true.age)
        else:
            written, true = "normal<->incorrect_mask", "normal,incorrect_mask"
        return {"id": self.true.id, "folder": self.written.folder, "kind": self.kind, "written": written, "true": true}


SWAPPED = {"normal": "incorrect_mask", "incorrect_mask": "normal"}


@dataclass(frozen=True)
class FileStyle:
    ext: str = ".jpg"
    png_mode: str = "RGB"
    resource_forks: bool = False


@dataclass(frozen=True)
class MaskDesign:
    colour: tuple
    accent: tuple
    pattern: str


@dataclass
class Look:
    """Everything that stays the same across one person's 7 pictures. Lengths are fractions of
    the face's half-width (u) and half-height (v), so any image size works."""

    backdrop: np.ndarray  # a tiny RGB grid, upsampled into a smooth background
    skin: tuple
    lips: tuple
    clothes: tuple
    hair_base: tuple
    greyness: float  # 0 dark .. 1 grey; grows smoothly with age
    wrinkle_lines: int  # forehead lines; more with age
    wrinkle_darkness: float  # 0 .. 1; grows smoothly with age
    long_hair: bool  # mostly female, but not always
    brow_thickness: float  # fraction of image height; thicker for men on average
    face_w: float  # face half-width as a fraction of image width
    face_h: float  # face half-height as a fraction of image height
    hairline: float
    hair_top: float
    hair_length: float
    eye_gap: float
    eye_size: float
    nose_length: float
    mouth_width: float
    glasses: tuple | None
    masks: list[MaskDesign]  # mask1..mask5
    incorrect_design: int  # which of the five masks the person wears wrongly
    clutter: list = field(default_factory=list)  # (shape, box as shares of the picture, colour) behind the person (style)


# ---------------------------------------------------------------------------------------------
# Who is in the data set

def allocate(people: int) -> list[int]:
    """People per group in GROUPS order: largest remainder of the real proportions (ties to the
    earlier group), then, from 6 people on, every group gets at least one person, taken from the
    largest group, so that tiny data sets still hold every class."""
    total = sum(REAL_GROUP_PEOPLE.values())
    real = list(REAL_GROUP_PEOPLE.values())
    counts = [people * n // total for n in real]
    by_remainder = sorted(range(len(real)), key=lambda g: (-(people * real[g] % total), g))
    for g in by_remainder[: people - sum(counts)]:
        counts[g] += 1
    if people >= len(GROUPS):
        for g in range(len(counts)):
            if counts[g] == 0:
                counts[counts.index(max(counts))] -= 1
                counts[g] = 1
    return counts


def roster(people: int, seed: int, stream: int, first_number: int, ages: str = "real") -> list[Person]:
    """`people` people in a shuffled order (real ids are not grouped by class)."""
    rng = np.random.default_rng([seed, stream])
    groups = [group for group, n in zip(GROUPS, allocate(people)) for _ in range(n)]
    order = rng.permutation(len(groups))
    return [
        Person(first_number + i, gender, _draw_age(band, rng, ages))
        for i, (gender, band) in enumerate(groups[j] for j in order)
    ]


FLAT_AGES = ((18, 29), (30, 59), (60, 69))  # each band's ages, for the flat distribution


def _draw_age(band: int, rng: np.random.Generator, ages: str = "real") -> int:
    if ages == "flat":
        low, high = FLAT_AGES[band]
        return int(rng.integers(low, high + 1))
    if band == 2:
        return OLD_AGE
    weights = YOUNG_AGES if band == 0 else MIDDLE_AGES
    ages = list(weights)
    p = np.array([weights[a] for a in ages])
    return int(rng.choice(ages, p=p / p.sum()))


def file_styles(people: int, seed: int, quirks: bool) -> list[FileStyle]:
    """Per person: extension, PNG mode and resource forks. Quirks go to a fixed number of
    people rather than by coin flip, so even a small data set exercises every one of them."""
    styles = [FileStyle() for _ in range(people)]
    if not quirks:
        return styles
    rng = np.random.default_rng([seed, QUIRK_STREAM])
    n_png, n_jpeg, n_fork = (max(1, round(share * people)) for share in (PNG_SHARE, JPEG_EXT_SHARE, RESOURCE_FORK_SHARE))
    order = rng.permutation(people)
    for k, i in enumerate(order[:n_png]):
        styles[i] = FileStyle(".png", PNG_MODES[k % len(PNG_MODES)])
    for i in order[n_png:n_png + n_jpeg]:
        styles[i] = FileStyle(".jpeg")
    for i in rng.permutation(people)[:n_fork]:
        styles[i] = FileStyle(styles[i].ext, styles[i].png_mode, resource_forks=True)
    return styles


def inject_noise(people: list[Person], share: float, seed: int, ages: str = "real") -> dict[int, InjectedError]:
    """Label errors for round(share * people) people (at least one when share > 0), the kinds
    taken in turn; keyed by person number. Its own random stream: the clean people stay as they were."""
    if share <= 0:
        return {}
    rng = np.random.default_rng([seed, NOISE_STREAM])
    chosen = rng.choice(len(people), size=min(len(people), max(1, round(share * len(people)))), replace=False)
    errors = {}
    for k, i in enumerate(chosen):
        true, kind = people[i], NOISE_KINDS[k % len(NOISE_KINDS)]
        if kind == "gender":
            written = Person(true.number, 1 - true.gender, true.age)
        elif kind == "age-band":  # young people written as middle-aged (mostly 50-59), the others as young
            written = Person(true.number, true.gender, _draw_age(1 if L.age_band(true.age) == 0 else 0, rng, ages))
        else:
            written = true
        errors[true.number] = InjectedError(true, kind, written)
    return errors


def person_rng(seed: int, person: Person) -> np.random.Generator:
    return np.random.default_rng([seed, PERSON_STREAM, person.number])


def eval_image_id(seed: int, person: Person, mask_kind: str) -> str:
    """A name that says nothing about the person, like the real hashed eval names."""
    return _eval_name(seed, person.number, mask_kind)


def _eval_name(seed: int, number: int, mask_kind: str) -> str:
    return hashlib.sha1(f"maskctl-synth:{seed}:{number}:{mask_kind}".encode()).hexdigest() + ".jpg"


def eval_image_people(seed: int, people: int, eval_people: int) -> dict[str, str]:
    """ImageID -> person id of the eval images `synthesize(seed=, people=, eval_people=)` writes:
    the names hide the person, and a bench that resamples eval people needs to know them."""
    numbers = range(people + 1, people + eval_people + 1)  # the eval roster's numbers (first_number=people + 1)
    return {_eval_name(seed, number, kind): person_id(number) for number in numbers for kind in L.MASK_KINDS}


# ---------------------------------------------------------------------------------------------
# What a person looks like

def draw_look(gender: int, age: int, rng: np.random.Generator, style: SynthStyle = DEFAULT_STYLE) -> Look:
    """A person's identity. Age cues are smooth functions of age plus per-person noise;
    gender cues are a hair style that 10 % of people do not follow, and brow thickness (both as
    visible as the style's cues say; the draws are the same, only their scale changes)."""
    def colour(low, high):
        return _rgb(rng.uniform(low, high))

    # One tone from light to dark keeps skin plausible; channel noise keeps it personal.
    skin = _rgb(_mix(LIGHT_SKIN, DARK_SKIN, rng.random()) + rng.normal(0, 5, size=3))
    # Walls behind people are mostly muted: a grey level with a slight tint and a soft gradient.
    wall = rng.uniform(60, 225) + rng.normal(0, 18, size=3)
    backdrop = np.clip(wall + rng.normal(0, 14, size=(4, 3, 3)), 0, 255)
    masks = [_draw_mask_design(rng) for _ in range(5)]
    return Look(
        backdrop=backdrop,
        skin=skin,
        lips=colour((150, 60, 60), (200, 100, 100)),
        clothes=colour((20, 20, 20), (230, 230, 230)),
        hair_base=colour((20, 15, 10), (75, 55, 40)),
        greyness=float(np.clip((age - 28) / 38 + rng.normal(0, 0.1 / style.age_cue), 0, 1)),
        wrinkle_lines=int(np.clip(round((age - 28) / 8 + rng.normal(0, 0.6 / style.age_cue)), 0, 4)),
        wrinkle_darkness=float(np.clip((age - 22) / 38 + rng.normal(0, 0.08 / style.age_cue), 0.05, 1)),
        long_hair=(gender == 1) != (rng.random() < min(0.45, 0.1 / style.gender_cue)),
        brow_thickness=float(max(0.004, rng.normal(_scaled_gap(0.019 if gender == 0 else 0.012, BROW_MIDPOINT, style.gender_cue), 0.003))),
        face_w=float(rng.uniform(0.25, 0.31) + (0.01 * style.gender_cue if gender == 0 else 0.0)),
        face_h=float(rng.uniform(0.24, 0.29)),
        hairline=float(rng.uniform(-0.62, -0.5)),
        hair_top=float(rng.uniform(-1.3, -1.15)),
        hair_length=float(rng.uniform(1.0, 1.7)),
        eye_gap=float(rng.uniform(0.33, 0.46)),
        eye_size=float(rng.uniform(0.13, 0.19)),
        nose_length=float(rng.uniform(0.12, 0.18)),
        mouth_width=float(rng.uniform(0.22, 0.34)),
        glasses=colour((10, 10, 10), (120, 90, 70)) if rng.random() < 0.15 else None,
        masks=masks,
        incorrect_design=int(rng.integers(5)),
    )


BROW_MIDPOINT = 0.0155  # between men's and women's mean brow thickness


def _scaled_gap(value: float, midpoint: float, cue: float) -> float:
    """`value`'s distance from `midpoint` scaled by `cue` (exactly `value` at cue 1)."""
    return value if cue == 1 else midpoint + (value - midpoint) * cue


def _draw_mask_design(rng: np.random.Generator) -> MaskDesign:
    base = np.array(MASK_COLOURS[rng.integers(len(MASK_COLOURS))], dtype=float)
    colour = np.clip(base + rng.normal(0, 12, size=3), 0, 255)
    accent = 255 - colour + rng.normal(0, 30, size=3)
    pattern = MASK_PATTERNS[rng.integers(len(MASK_PATTERNS))]
    return MaskDesign(_rgb(colour), _rgb(accent), pattern)


# ---------------------------------------------------------------------------------------------
# Drawing one picture: PIL.ImageDraw shapes only (C-fast), no per-pixel numpy work

class _Face:
    """Maps face coordinates (u, v in half-widths/half-heights from the face centre) to pixels
    and applies the picture's brightness to every colour."""

    def __init__(self, draw, cx, cy, rx, ry, bright, height):
        self.draw, self.cx, self.cy, self.rx, self.ry = draw, cx, cy, rx, ry
        self.bright, self.height = bright, height

    def pt(self, u, v):
        return (self.cx + u * self.rx, self.cy + v * self.ry)

    def box(self, u0, v0, u1, v1):
        (x0, y0), (x1, y1) = self.pt(u0, v0), self.pt(u1, v1)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def paint(self, rgb, shade=1.0):
        return tuple(min(255, int(c * shade * self.bright)) for c in rgb)

    def width(self, fraction_of_height):
        return max(1, round(fraction_of_height * self.height))


def render(look: Look, mask_kind: str, rng: np.random.Generator, width: int, height: int, style: SynthStyle = DEFAULT_STYLE,
           style_rng: np.random.Generator | None = None) -> Image.Image:
    """One picture of a person; `rng` supplies only the small per-picture jitter, `style_rng` the
    style's photo conditions (needed only when the style has any)."""
    bright = rng.uniform(0.9, 1.1)
    scale = rng.uniform(0.97, 1.03)
    shift_x = shift_y = 0.0
    if style.conditions():
        bright *= style_rng.uniform(1 - style.light, 1 + style.light)
        scale *= 1 + style_rng.uniform(-2 * style.framing, 2 * style.framing)
        shift_x, shift_y = style_rng.uniform(-style.framing, style.framing, size=2)
    image = _backdrop(look, bright, width, height)
    if look.clutter:
        _draw_clutter(ImageDraw.Draw(image), look.clutter, bright, width, height)
    face = _Face(
        ImageDraw.Draw(image),
        cx=width * (0.5 + rng.uniform(-0.02, 0.02) + shift_x),
        cy=height * (0.46 + rng.uniform(-0.015, 0.015) + shift_y),
        rx=width * look.face_w * scale,
        ry=height * look.face_h * scale,
        bright=bright,
        height=height,
    )
    _draw_head(face, look)
    _draw_features(face, look, gaze=rng.uniform(-0.04, 0.04))
    if mask_kind == "incorrect_mask":
        _draw_mask(face, look.masks[look.incorrect_design], top=0.34)  # under the nose tip (at most 0.26)
    elif mask_kind != "normal":
        _draw_mask(face, look.masks[int(mask_kind[-1]) - 1], top=-0.1)  # over nose and mouth
    if look.glasses:
        _draw_glasses(face, look)
    return _photo_conditions(image, look, bright, style, style_rng) if style.conditions() else image


def _photo_conditions(image: Image.Image, look: Look, bright: float, style: SynthStyle, rng: np.random.Generator) -> Image.Image:
    """A colour cast, a tilt and a blur: what one camera, room and hand do to a photo."""
    if style.light:
        cast = 1 + rng.normal(0, style.light / 3, size=3)
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * cast, 0, 255).astype(np.uint8), "RGB")
    if style.rotation:
        wall = tuple(int(c) for c in np.clip(look.backdrop.mean((0, 1)) * bright, 0, 255))
        image = image.rotate(rng.uniform(-style.rotation, style.rotation), resample=Image.Resampling.BILINEAR, fillcolor=wall)
    if style.blur and rng.random() < style.blur:
        image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.0) * 0.01 * image.height))
    return image


def _draw_clutter(draw, clutter: list, bright: float, width: int, height: int) -> None:
    for shape, (x0, y0, x1, y1), colour in clutter:
        box = [x0 * width, y0 * height, x1 * width, y1 * height]
        fill = tuple(min(255, int(c * bright)) for c in colour)
        (draw.ellipse if shape == "ellipse" else draw.rectangle)(box, fill=fill)


# Clothes colours per (gender, age band) when they leak labels: uniforms, tracksuits, suits.
LEAK_CLOTHES = {(0, 0): (40, 60, 140), (0, 1): (60, 60, 65), (0, 2): (120, 95, 70),
                (1, 0): (200, 60, 90), (1, 1): (150, 150, 160), (1, 2): (90, 120, 80)}
LEAK_SHARE = 0.7  # the share of people whose clothes follow the rule


def _style_person(look: Look, person: Person, style: SynthStyle, rng: np.random.Generator) -> None:
    """The style's per-person changes to a look: clothes that go with the labels, clutter behind."""
    if style.clothes == "leak" and rng.random() < LEAK_SHARE:
        base = LEAK_CLOTHES[(person.gender, L.age_band(person.age))]
        look.clothes = _rgb(np.add(base, rng.normal(0, 18, size=3)))
    for _ in range(style.clutter):
        x, y = rng.uniform(0, 1, size=2)
        w, h = rng.uniform(0.05, 0.3, size=2)
        look.clutter.append(("ellipse" if rng.random() < 0.5 else "rect", (x - w / 2, y - h / 2, x + w / 2, y + h / 2),
                             _rgb(rng.uniform(0, 255, size=3))))


def _backdrop(look: Look, bright: float, width: int, height: int) -> Image.Image:
    grid = np.clip(look.backdrop * bright, 0, 255).astype(np.uint8)
    return Image.fromarray(grid, "RGB").resize((width, height), Image.Resampling.BILINEAR)


def _draw_head(face: _Face, look: Look) -> None:
    draw = face.draw
    hair = face.paint(_mix(look.hair_base, GREY_HAIR, look.greyness))
    draw.ellipse(face.box(-2.3, 1.3, 2.3, 3.4), fill=face.paint(look.clothes))
    draw.rectangle(face.box(-0.4, 0.5, 0.4, 1.45), fill=face.paint(look.skin, 0.9))
    for side in (-1, 1):
        draw.ellipse(face.box(side * 0.88, -0.3, side * 1.1, 0.2), fill=face.paint(look.skin, 0.95))
    if look.long_hair:  # strands down both sides, over the ears, to the shoulders
        for side in (-1, 1):
            draw.polygon([face.pt(side * 0.8, look.hairline), face.pt(side * 1.28, look.hairline + 0.1),
                          face.pt(side * 1.38, look.hair_length), face.pt(side * 0.85, look.hair_length)], fill=hair)
    draw.ellipse(face.box(-1, -1, 1, 1), fill=face.paint(look.skin))
    bottom = 2 * look.hairline - look.hair_top
    draw.chord(face.box(-1.08, look.hair_top, 1.08, bottom), 180, 360, fill=hair)
    if not look.long_hair:  # short sideburns
        for side in (-1, 1):
            draw.rectangle(face.box(side * 0.9, look.hairline, side * 1.02, -0.2), fill=hair)
    _draw_wrinkles(face, look)


def _draw_wrinkles(face: _Face, look: Look) -> None:
    line = face.paint(look.skin, 1 - 0.45 * look.wrinkle_darkness)
    for i in range(look.wrinkle_lines):
        v = look.hairline + 0.09 + 0.05 * i
        face.draw.line([face.pt(-0.42, v), face.pt(0.42, v)], fill=line, width=face.width(0.004))


def _draw_features(face: _Face, look: Look, gaze: float) -> None:
    draw = face.draw
    brow = face.paint(_mix(look.hair_base, GREY_HAIR, 0.5 * look.greyness))
    for side in (-1, 1):
        x = side * look.eye_gap
        draw.line([face.pt(x - look.eye_size, -0.34), face.pt(x + look.eye_size, -0.36)],
                  fill=brow, width=face.width(look.brow_thickness))
        draw.ellipse(face.box(x - look.eye_size, -0.24, x + look.eye_size, -0.14), fill=face.paint((245, 245, 240)))
        pupil = 0.45 * look.eye_size
        draw.ellipse(face.box(x + gaze - pupil, -0.24, x + gaze + pupil, -0.14), fill=face.paint((40, 28, 20)))
    nose_tip = -0.1 + 2 * look.nose_length
    draw.polygon([face.pt(0, -0.14), face.pt(-0.13, nose_tip), face.pt(0.13, nose_tip)], fill=face.paint(look.skin, 0.8))
    width = look.mouth_width
    draw.ellipse(face.box(-width, 0.44, width, 0.56), fill=face.paint(look.lips))


def _draw_mask(face: _Face, design: MaskDesign, top: float) -> None:
    """A mask from `top` down past the chin, following the face outline, with ear straps."""
    start = math.asin(top / 1.04)
    arc = [face.pt(1.04 * math.cos(t), 1.04 * math.sin(t))
           for t in np.linspace(start, math.pi - start, 14)]
    side = 1.04 * math.cos(start)
    outline = arc + [face.pt(-0.5 * side, top - 0.03), face.pt(0, top - 0.08), face.pt(0.5 * side, top - 0.03)]
    draw = face.draw
    colour, accent = face.paint(design.colour), face.paint(design.accent)
    for s in (-1, 1):
        draw.line([face.pt(s * side, top + 0.05), face.pt(s * 1.0, -0.15)], fill=accent, width=face.width(0.006))
    draw.polygon(outline, fill=colour)
    if design.pattern == "stripes":
        for v in np.arange(top + 0.12, 0.95, 0.14):
            half = math.sqrt(1 - v * v)
            draw.line([face.pt(-half, v), face.pt(half, v)], fill=accent, width=face.width(0.008))
    elif design.pattern == "dots":
        for v in np.arange(top + 0.12, 0.9, 0.18):
            for u in np.arange(-0.75, 0.8, 0.25):
                if u * u + v * v < 0.8:
                    draw.ellipse(face.box(u - 0.04, v - 0.03, u + 0.04, v + 0.03), fill=accent)
    elif design.pattern == "trim":
        draw.line([face.pt(-0.9 * side, top + 0.02), face.pt(0, top - 0.05), face.pt(0.9 * side, top + 0.02)],
                  fill=accent, width=face.width(0.012))


def _draw_glasses(face: _Face, look: Look) -> None:
    frame = face.paint(look.glasses)
    thin = face.width(0.005)
    for side in (-1, 1):
        x = side * look.eye_gap
        face.draw.rectangle(face.box(x - 1.3 * look.eye_size, -0.29, x + 1.3 * look.eye_size, -0.09), outline=frame, width=thin)
    inner = look.eye_gap - 1.3 * look.eye_size
    face.draw.line([face.pt(-inner, -0.2), face.pt(inner, -0.2)], fill=frame, width=thin)


def _mix(a, b, t):
    return np.add(a, np.subtract(b, a) * t)


def _rgb(values) -> tuple:
    return tuple(float(c) for c in np.clip(values, 0, 255))


# ---------------------------------------------------------------------------------------------
# Writing the folders

def synthesize(
    out: str | Path,
    people: int = 60,
    eval_people: int | None = None,
    seed: int = 0,
    width: int = 384,
    height: int = 512,
    quirks: bool = True,
    show_progress: bool = True,
    overwrite: bool = False,
    label_noise: float = 0.0,
    style: SynthStyle | str = DEFAULT_STYLE,
) -> SynthSummary:
    """Write a synthetic train and eval set under `out` (see the module docstring); `style` is a
    SynthStyle or its text (a named style with knobs: 'hard', 'real,blur=0.3')."""
    started = time.perf_counter()
    eval_people = max(1, people // 3) if eval_people is None else eval_people
    _check_arguments(people, eval_people, width, height, label_noise)
    style = parse_style(style) if isinstance(style, str) else style
    style.check()
    out = _prepare(Path(out), overwrite)
    # The marker goes first, so an interrupted run can be replaced with overwrite=True.
    parameters = dict(people=people, eval_people=eval_people, seed=seed, width=width, height=height, quirks=quirks)
    if label_noise:  # only then: a clean set's synth.json keeps today's bytes
        parameters["label_noise"] = label_noise
    if style.changed():  # likewise: the default style's synth.json stays as it was
        parameters["style"] = style.changed()
    write_text(out / MARKER, json.dumps({"maskctl_synth": 1, **parameters}, indent=2) + "\n")

    train = roster(people, seed, TRAIN_ROSTER, first_number=1, ages=style.ages)
    noise = inject_noise(train, label_noise, seed, style.ages)
    class_counts = _write_train(out / "train", train, file_styles(people, seed, quirks), noise, seed, (width, height), style, show_progress)
    if eval_people:
        evaluation = roster(eval_people, seed, EVAL_ROSTER, first_number=people + 1, ages=style.ages)
        _write_eval(out / "eval", evaluation, seed, (width, height), style, show_progress)
    return SynthSummary(
        out=out,
        train_people=people,
        eval_people=eval_people,
        train_images=people * len(L.MASK_KINDS),
        eval_images=eval_people * len(L.MASK_KINDS),
        class_counts=class_counts,
        seconds=time.perf_counter() - started,
        injected=len(noise),
    )


def _check_arguments(people: int, eval_people: int, width: int, height: int, label_noise: float) -> None:
    if people < 1:
        raise MaskctlError(f"--people must be at least 1, got {people}")
    if eval_people < 0:
        raise MaskctlError(f"--eval-people must be 0 or more, got {eval_people}")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise MaskctlError(f"image size must be at least {MIN_SIDE}x{MIN_SIDE}, got {width}x{height}")
    if not 0 <= label_noise <= MAX_LABEL_NOISE:
        raise MaskctlError(f"--label-noise must be between 0 and {MAX_LABEL_NOISE}, got {label_noise}")


def _prepare(out: Path, overwrite: bool) -> Path:
    """With overwrite, only train/ and eval/ are replaced, and only in a folder this module
    wrote: `--overwrite` on a real data folder by mistake must not delete real images."""
    out = prepare_output_dir(out, overwrite)
    ours = (out / MARKER).is_file()
    for sub in ("train", "eval"):
        target = out / sub
        if target.exists():
            if not ours:
                raise MaskctlError(f"{target} was not written by maskctl synth (no {MARKER} in {out}); "
                                   "remove it yourself or pick another output folder")
            shutil.rmtree(target)
    return out


def _write_train(root: Path, people: list[Person], file_styles: list[FileStyle], noise: dict[int, InjectedError], seed: int, size,
                 style: SynthStyle, show_progress: bool) -> list[int]:
    """The pictures show each true person; the folder names and train.csv say what is written
    (the truth, but for the people in `noise`). Class counts are of the written labels."""
    import pandas as pd

    written = [noise[p.number].written if p.number in noise else p for p in people]
    class_counts = [0] * L.NUM_CLASSES
    for person, label_person, file_style in _progress(list(zip(people, written, file_styles)), "synthesizing train people", show_progress):
        folder = root / "images" / label_person.folder
        folder.mkdir(parents=True)
        look, rng, style_rng = _look_of(person, seed, style)
        error = noise.get(person.number)
        for kind in L.MASK_KINDS:
            file_kind = error.file_kind(kind) if error else kind
            path = folder / f"{file_kind}{file_style.ext}"
            _save(render(look, kind, rng, *size, style, style_rng), path, file_style)
            if file_style.resource_forks:
                path.with_name("._" + path.name).write_bytes(RESOURCE_FORK_BYTES)
            class_counts[label_person.label(file_kind)] += 1
    table = pd.DataFrame({
        "id": [p.id for p in written],
        "gender": [L.GENDER_NAMES[p.gender] for p in written],
        "race": "Asian",
        "age": [p.age for p in written],
        "path": [p.folder for p in written],
    })
    write_csv(root / "train.csv", table)
    if noise:
        write_csv(root / NOISE_FILE, pd.DataFrame([e.record() for e in noise.values()]).sort_values("id"))
    return class_counts


def _write_eval(root: Path, people: list[Person], seed: int, size, style: SynthStyle, show_progress: bool) -> None:
    import pandas as pd

    images = root / "images"
    images.mkdir(parents=True)
    answers = []
    for person in _progress(people, "synthesizing eval people", show_progress):
        look, rng, style_rng = _look_of(person, seed, style)
        for kind in L.MASK_KINDS:
            name = eval_image_id(seed, person, kind)
            _save(render(look, kind, rng, *size, style, style_rng), images / name, FileStyle())
            answers.append((name, person.label(kind)))
    # Sorted hashed names scatter each person's pictures over the list, as in the real info.csv.
    answers.sort()
    names = [name for name, _ in answers]
    write_csv(root / "info.csv", pd.DataFrame({"ImageID": names, "ans": 0}))
    write_csv(root / "answers.csv", pd.DataFrame({"ImageID": names, "ans": [label for _, label in answers]}))


def _look_of(person: Person, seed: int, style: SynthStyle = DEFAULT_STYLE) -> tuple[Look, np.random.Generator, np.random.Generator]:
    """The person's look, the stream that goes on to give each picture its jitter, and the
    style's own stream (untouched by the default style, so its pictures stay as they were)."""
    rng = person_rng(seed, person)
    look = draw_look(person.gender, person.age, rng, style)
    style_rng = np.random.default_rng([seed, STYLE_STREAM, person.number])
    _style_person(look, person, style, style_rng)
    return look, rng, style_rng


def _save(image: Image.Image, path: Path, style: FileStyle) -> None:
    if style.ext == ".png":
        if style.png_mode == "P":
            image = image.convert("P", palette=Image.Palette.ADAPTIVE)
        else:
            image = image.convert(style.png_mode)  # RGBA gets an opaque alpha channel
        image.save(path, "PNG")
    else:
        image.save(path, "JPEG", quality=JPEG_QUALITY)


def _progress(items: list, description: str, show: bool):
    return track(items, description, total=len(items)) if show else items
