"""Training and evaluation transforms: uint8 (S, S) array -> normalised float tensor (C, S, S).

Built from torchvision.transforms.v2 plus four MRI transforms (CLAHE, gamma, random intensity
curves, per-scan percentile normalisation, in `mri_transforms`). All settings come from one frozen
`AugmentConfig`, loadable from YAML, so a run folder can store exactly what was used.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torchvision.transforms import InterpolationMode, v2

from braintumor.data.mri_transforms import PercentileNormalize, RandomCLAHE, RandomGamma, RandomIntensityRemap
from braintumor.data.preprocess import Preprocess, load_preprocessed


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings. Every probability is in [0, 1]; 0 turns that step off.

    Defaults are mild on purpose: MRI slices are centred and upright after preprocessing, and
    strong warps or intensity changes create images no scanner produces.
    """

    hflip_p: float = 0.5  # left-right mirror probability; brains are near-symmetric, tumours occur on both sides
    vflip_p: float = 0.0  # up-down flip probability; 0 usually (anatomy has an up), 0-0.5
    affine_p: float = 0.7  # probability of the random rotation/zoom/shift below
    rotation_deg: float = 10.0  # max rotation, degrees, 0-30 (head tilt in the scanner)
    scale: tuple[float, float] = (0.9, 1.1)  # zoom factor range, (0.8, 1.2) at most
    translate: float = 0.05  # max shift, fraction of the side, 0-0.15
    elastic_p: float = 0.0  # probability of an elastic warp (slow, strong); 0-0.3
    elastic_alpha: float = 20.0  # elastic displacement magnitude, pixels, 10-50
    elastic_sigma: float = 6.0  # elastic smoothness, pixels, 4-10
    intensity_p: float = 0.8  # probability of the brightness/contrast jitter below
    brightness: float = 0.15  # max relative brightness change, 0-0.4
    contrast: float = 0.15  # max relative contrast change, 0-0.4
    gamma_p: float = 0.3  # probability of a gamma change
    gamma: tuple[float, float] = (0.8, 1.25)  # gamma exponent range (log-uniform), (1, 1) is off
    remap_p: float = 0.0  # probability of a random, possibly non-monotonic intensity curve (sequence change); 0-0.5
    remap_points: int = 3  # interior knots of that curve, 2-5; more is wilder
    clahe_p: float = 0.1  # probability of CLAHE (local contrast equalisation)
    clahe_clip: float = 2.0  # CLAHE clip limit, 1-4
    clahe_grid: int = 8  # CLAHE tiles per side, 4-16
    blur_p: float = 0.1  # probability of a Gaussian blur (thicker slices, lower resolution)
    blur_sigma: tuple[float, float] = (0.3, 1.0)  # blur sigma range, pixels at the model's image size
    noise_p: float = 0.1  # probability of additive Gaussian noise (low-field, fast sequences)
    noise_std: float = 0.02  # noise standard deviation, in units of the [0, 1] intensity range, 0-0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_p") and not 0 <= value <= 1:
                raise ValueError(f"augmentation '{f.name}' is a probability and must be in [0, 1], got {value}")
            if isinstance(value, tuple) and not (len(value) == 2 and 0 <= value[0] <= value[1]):
                raise ValueError(f"augmentation '{f.name}' must be a range [low, high] with 0 <= low <= high")
            if not isinstance(value, tuple) and value < 0:
                raise ValueError(f"augmentation '{f.name}' must not be negative, got {value}")
        if self.scale[0] <= 0 or self.gamma[0] <= 0:
            raise ValueError("augmentation 'scale' and 'gamma' ranges must be above 0")
        if self.remap_points < 1:
            raise ValueError(f"augmentation 'remap_points' must be at least 1, got {self.remap_points}")
        if self.clahe_grid < 1:
            raise ValueError(f"augmentation 'clahe_grid' must be at least 1, got {self.clahe_grid}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """A config with every augmentation disabled (the starting point to enable one at a time)."""
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name.endswith("_p")})

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "augmentation config") -> AugmentConfig:
        """Build from a plain mapping; unknown keys and wrongly typed values raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a mapping of augmentation settings, found {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            hints = [
                f"'{k}' (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(k, known, 1)) else f"'{k}'"
                for k in unknown
            ]
            raise ValueError(f"{source}: unknown setting(s) {', '.join(hints)}; known: {', '.join(known)}")
        values = {k: _coerce(k, v, known[k].default, source) for k, v in d.items()}
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AugmentConfig:
        """Read a YAML mapping of settings (missing ones keep their defaults).

        Raises:
            FileNotFoundError: no such file. ValueError: invalid YAML, unknown key or bad value.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: augmentation config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of augmentation settings, found {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ranges as lists) for YAML/JSON run folders and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    def number(v: Any, kind: type) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            raise ValueError(f"{source}: '{key}' must be {'an integer' if kind is int else 'a number'}, got {v!r}")
        return kind(v)

    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{source}: '{key}' must be a [low, high] pair, got {value!r}")
        return tuple(number(v, float) for v in value)
    return number(value, type(default))


def build_augment(cfg: AugmentConfig) -> v2.Compose:
    """The random part alone: float (1, S, S) in [0, 1] -> float (1, S, S) in [0, 1]."""
    steps: list[Callable] = [v2.RandomHorizontalFlip(cfg.hflip_p), v2.RandomVerticalFlip(cfg.vflip_p)]
    affine = v2.RandomAffine(
        degrees=cfg.rotation_deg,
        translate=(cfg.translate, cfg.translate),
        scale=cfg.scale,
        interpolation=InterpolationMode.BILINEAR,
        fill=0,  # black, like the MRI background
    )
    elastic = v2.ElasticTransform(alpha=cfg.elastic_alpha, sigma=cfg.elastic_sigma, fill=0)
    jitter = v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast)
    kernel = 2 * int(np.ceil(3 * cfg.blur_sigma[1])) + 1  # covers +-3 sigma of the widest blur
    blur = v2.GaussianBlur(kernel_size=max(3, kernel), sigma=cfg.blur_sigma)
    steps += [
        v2.RandomApply([affine], p=cfg.affine_p),
        v2.RandomApply([elastic], p=cfg.elastic_p),
        RandomCLAHE(p=cfg.clahe_p, clip_limit=cfg.clahe_clip, tile_grid=cfg.clahe_grid),
        v2.RandomApply([jitter], p=cfg.intensity_p),
        RandomGamma(cfg.gamma, p=cfg.gamma_p),
    ]
    if cfg.remap_p > 0:  # added only when on, so configs without it draw the same random stream as before
        steps.append(RandomIntensityRemap(p=cfg.remap_p, points=cfg.remap_points))
    steps += [
        v2.RandomApply([blur], p=cfg.blur_p),
        v2.RandomApply([v2.GaussianNoise(sigma=cfg.noise_std, clip=True)], p=cfg.noise_p),
    ]
    return v2.Compose(steps)


def build_transforms(
    cfg: AugmentConfig | None,
    *,
    train: bool,
    in_chans: int,
    mean: Sequence[float],
    std: Sequence[float],
    per_scan_norm: bool = False,
) -> v2.Compose:
    """Map a preprocessed uint8 (S, S) array to a normalised float32 tensor (in_chans, S, S).

    Args:
        cfg: augmentation settings (used only when `train`); None means `AugmentConfig()`.
        train: apply the random augmentations; False gives the deterministic evaluation pipeline.
        in_chans: 1, or 3 to repeat the grey channel (ImageNet-pretrained stems).
        mean: per-channel mean subtracted after scaling to [0, 1]; one value or `in_chans` values.
        std: per-channel standard deviation divided by; one value or `in_chans` values.
        per_scan_norm: first rescale each image by its own 1st-99th percentiles (see `PercentileNormalize`).
    """
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    mean, std = _per_channel(mean, in_chans, "mean"), _per_channel(std, in_chans, "std")
    steps: list[Callable] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if per_scan_norm:
        steps.append(PercentileNormalize())
    if train:
        steps.append(build_augment(cfg or AugmentConfig()))
    if in_chans == 3:
        steps.append(v2.RGB())
    steps += [v2.Normalize(mean=mean, std=std), v2.ToPureTensor()]
    return v2.Compose(steps)


def _per_channel(values: Sequence[float] | float, in_chans: int, name: str) -> list[float]:
    vals = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(vals) == 1:
        vals = vals * in_chans
    if len(vals) != in_chans:
        raise ValueError(f"{name} has {len(vals)} values but in_chans is {in_chans}")
    if name == "std" and min(vals) <= 0:
        raise ValueError(f"std values must be positive, got {vals}")
    return vals


def save_augment_grid(
    image: str | Path,
    out: str | Path,
    *,
    cfg: AugmentConfig,
    n: int = 16,
    image_size: int = 224,
    seed: int = 0,
    preprocess: Preprocess | None = None,
) -> Path:
    """Draw the preprocessed scan and `n` augmented versions of it in a labelled grid PNG.

    Args:
        image: one scan file (image, DICOM or NIfTI).
        out: PNG to write (parent folders are created).
        cfg: augmentation settings to show.
        n: number of augmented samples, 1-256.
        image_size: side of each cell in pixels (the preprocessing size).
        seed: seed of the draws; the global torch RNG is left as it was.
        preprocess: preprocessing to apply; default `Preprocess(image_size=image_size)`.

    Raises:
        braintumor.io.ScanReadError: the scan cannot be read. ValueError: n out of range.
    """
    from matplotlib.figure import Figure  # import here: plotting is not needed for training

    if not 1 <= n <= 256:
        raise ValueError(f"number of augmented samples must be between 1 and 256, got {n}")
    base = load_preprocessed(Path(image), preprocess or Preprocess(image_size=image_size))
    to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    augment = build_augment(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cells = [to_float(base)] + [augment(to_float(base)) for _ in range(n)]
    cols = int(np.ceil(np.sqrt(len(cells))))
    rows = int(np.ceil(len(cells) / cols))
    fig = Figure(figsize=(2.2 * cols, 2.3 * rows + 0.4), layout="constrained")
    fig.suptitle(f"{Path(image).name}: original and {n} augmented samples (seed {seed})", fontsize=10)
    for i, ax in enumerate(fig.subplots(rows, cols, squeeze=False).ravel()):
        ax.set_axis_off()
        if i < len(cells):
            ax.imshow(cells[i][0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title("original" if i == 0 else f"augmented {i}", fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out
