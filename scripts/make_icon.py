#!/usr/bin/env python3
"""Draws the De-LightSAM Annotator icon (assets/icons/delightsam-N.png) with Pillow.

A dark rounded tile, a grey cross-section (a slice of a scan), an organ inside it outlined by
a bright segmentation contour with its filled mask, and a small spark for the assistant.
Run from the repository root: python3 scripts/make_icon.py
"""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 1024
SIZES = [16, 24, 32, 48, 64, 128, 256, 512]


def draw() -> Image.Image:
    s = SIZE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([40, 40, s - 40, s - 40], radius=190, fill=(18, 32, 56, 255))
    # The scan: a body cross-section with a soft rim.
    body = Image.new("L", (s, s), 0)
    ImageDraw.Draw(body).ellipse([150, 210, 874, 850], fill=255)
    body = body.filter(ImageFilter.GaussianBlur(6))
    img.paste((118, 128, 140, 255), (0, 0), body)
    d.ellipse([190, 250, 834, 810], fill=(150, 160, 172, 255))
    # The organ: its mask filled translucent, its contour bright.
    organ = [380, 360, 700, 690]
    mask = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(mask).ellipse(organ, fill=(40, 220, 170, 120))
    img = Image.alpha_composite(img, mask)
    d = ImageDraw.Draw(img)
    d.ellipse(organ, outline=(60, 255, 190, 255), width=34)
    # The assistant's spark, top right.
    cx, cy, r, w = 770, 250, 120, 34
    d.polygon([(cx, cy - r), (cx + w, cy - w), (cx + r, cy), (cx + w, cy + w), (cx, cy + r), (cx - w, cy + w), (cx - r, cy), (cx - w, cy - w)], fill=(255, 210, 80, 255))
    return img


def main() -> None:
    out = Path("assets/icons")
    out.mkdir(parents=True, exist_ok=True)
    big = draw()
    for size in SIZES:
        big.resize((size, size), Image.LANCZOS).save(out / f"delightsam-{size}.png", optimize=True)


if __name__ == "__main__":
    main()
