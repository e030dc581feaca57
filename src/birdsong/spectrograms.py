"""Mirror a species tree of recordings as a species tree of model-image PNGs.

This is the input format of the notebook birdsong grew from: one folder per species,
one PNG per window. The images are produced by the model's own frontend layer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._io import check_output_dir
from .audio import load_audio
from .config import FeatureConfig
from .dataset import Skipped, index_dataset
from .errors import AudioError
from .images import check_hop, model_images, save_image_png

__all__ = ["MirrorSummary", "mirror_tree"]

log = logging.getLogger(__name__)


@dataclass
class MirrorSummary:
    recordings: int = 0
    images: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def mirror_tree(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: FeatureConfig | None = None,
    hop_seconds: float | None = None,
    max_seconds: float | None = 600.0,
    progress: bool = False,
) -> MirrorSummary:
    """Write ``out_dir/<species>/<recording stem>_w<NNN>.png`` for every window.

    Bad files are skipped and listed in the summary with the reason. ``out_dir`` may not
    be ``data_dir`` or inside it (the images would become part of the dataset).
    """
    from tqdm.auto import tqdm

    config = config or FeatureConfig()
    check_output_dir(out_dir, inputs=[data_dir], name="out_dir")
    check_hop(config, hop_seconds)
    index = index_dataset(data_dir, group_pattern=None, min_species=1)
    summary = MirrorSummary(skipped=list(index.skipped))
    out_root = Path(out_dir)
    for rec in tqdm(index.recordings, desc="spectrograms", unit="file", disable=not progress):
        try:
            signal, _ = load_audio(
                rec.path, sample_rate=config.sample_rate, max_seconds=max_seconds
            )
        except (AudioError, OSError) as exc:
            summary.skipped.append(Skipped(str(rec.path), str(exc)))
            continue
        images, _ = model_images(signal, config=config, hop_seconds=hop_seconds)
        rel = rec.path.relative_to(index.root).with_suffix("")
        for i, image in enumerate(images):
            save_image_png(image, out_root / rel.parent / f"{rel.name}_w{i:03d}.png")
        summary.recordings += 1
        summary.images += len(images)
    return summary
