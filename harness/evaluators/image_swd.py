"""``image_swd``: Laplacian-pyramid SWD between generated samples and real images (Fig. 2 right).

The paper measures, every 5 epochs from initialisation, the sliced Wasserstein distance between
test images and samples g(z), z from the prior, with swd-pytorch (``eval.swd.mode: swd_pytorch``;
``pggan`` gives the Karras et al. reference values, about 12× smaller; see
:mod:`harness.metrics.image_swd`). Both sets hold n = min(``eval.swd.num_images``, size of
``eval.swd.split``) images: the first n images of the split, and n samples decoded from prior
draws fixed at construction and quantised to uint8 exactly as saved images are. Patch
positions and directions come from ``derive_seed(eval.seed, "image_swd")``: every evaluation
uses the same randomness, so the curve over epochs reflects the model only, and the real
images' sorted projections are computed once and reused (bitwise the same values, half the
work of every later evaluation).

Logs ``image_swd`` (mean over pyramid levels) and ``image_swd_res<R>`` per level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.errors import require, require_choice
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.metrics.image_swd import ReferenceCache, image_swd, to_uint8
from harness.seeding import derive_seed, make_generator


def decode(model, z: torch.Tensor, device, batch_size: int = 500) -> torch.Tensor:
    """Decoder outputs g(z) on the CPU, in batches, without gradients."""
    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch_size):
            out.append(model.decoder(z[i : i + batch_size].to(device)).cpu())
    return torch.cat(out)


@dataclass
class ImageSWDConfig:
    """``eval.swd``: image-space sliced Wasserstein distance of Laplacian-pyramid patches (Fig. 2 right)."""

    mode: str = "pggan"  # pggan (Karras et al. 2018 reference) | swd_pytorch (the paper's package)
    num_images: int = 1000  # images per set (SWD depends on it)
    split: str = "test"

    def check(self, p: str) -> None:
        require_choice(self.mode, f"{p}.mode", ["pggan", "swd_pytorch"])
        require(self.num_images >= 2, f"{p}.num_images", self.num_images, "an integer >= 2")
        require_choice(self.split, f"{p}.split", ["train", "test"])


@EVALUATORS.register("image_swd")
class ImageSWD(Evaluator):
    Config = ImageSWDConfig
    config_key = "swd"
    logs = ("image_swd", "image_swd_*")
    needs_images = True

    def __init__(self, config: ImageSWDConfig, ctx):
        super().__init__(config, ctx)
        real = ctx.data.test_x if config.split == "test" else ctx.data.train_x
        self.real = real[: config.num_images]
        self.z = ctx.prior.sample(len(self.real), generator=make_generator(ctx.seed, "image_swd", "prior"))
        self.mode, self.seed = config.mode, derive_seed(ctx.seed, "image_swd")
        self.reference = ReferenceCache()  # the real images' half, computed at the first evaluation

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        fake = to_uint8(decode(model, self.z, self.device)).view_as(self.real)
        res = image_swd(fake, self.real, mode=self.mode, seed=self.seed, device=self.device,
                        reference=self.reference)
        out = {"image_swd": res.pop("mean")}
        out.update({f"image_swd_{k}": v for k, v in res.items()})
        return out
