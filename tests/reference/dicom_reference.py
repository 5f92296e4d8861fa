#!/usr/bin/env python3
"""Reference numbers for `delightsam info --json`, computed with pydicom.

Usage: python3 tests/reference/dicom_reference.py ../shared/data/dicom > tests/reference/dicom_reference.json

Needs: pip install pydicom pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle numpy
For every file: whether pydicom decodes it, and for decodable ones the header fields of the
`info --json` contract plus frame-0 statistics: in modality units (pixel_array + apply_modality_lut)
for MONOCHROME, after the palette for PALETTE COLOR, and of the RGB samples for colour files.

Enhanced multi-frame files keep their rescale, orientation and positions in functional groups
(PS3.3 C.7.6.16: a frame's own Per-Frame group, else the Shared group). pydicom 3.0's
apply_modality_lut reads only the top-level Rescale Slope/Intercept, so for those files the
frame's functional-group rescale is applied here explicitly; the geometry (orientation, every
frame's position) is read the same way. Geometry of classic files comes from the top level.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut


def is_enhanced(ds) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def frame_attr(ds, frame: int, group: str, keyword: str):
    """An attribute of `frame`: its own functional group, else the shared one, else the top level."""
    places = []
    if "PerFrameFunctionalGroupsSequence" in ds and frame < len(ds.PerFrameFunctionalGroupsSequence):
        places.append(ds.PerFrameFunctionalGroupsSequence[frame])
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence) > 0:
        places.append(ds.SharedFunctionalGroupsSequence[0])
    for place in places:
        if group in place and len(place[group].value) > 0 and keyword in place[group][0]:
            return place[group][0][keyword].value
    return ds.get(keyword)


def frame_rescale(ds, frame: int):
    slope = frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    if slope is None and intercept is None:
        return None
    return (float(slope) if slope is not None else 1.0, float(intercept) if intercept is not None else 0.0)


def describe(path: Path) -> dict:
    out = {"file": path.name}
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as e:  # noqa: BLE001 - the reference records every failure
        out["decodes"] = False
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    if "PixelData" not in ds:
        out["decodes"] = False
        out["error"] = "no pixel data"
        return out
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001
        out["decodes"] = False
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out["decodes"] = True
    out["photometric"] = str(ds.get("PhotometricInterpretation", ""))
    out["rows"] = int(ds.Rows)
    out["cols"] = int(ds.Columns)
    out["frames"] = int(getattr(ds, "NumberOfFrames", 1) or 1)
    out["bits_allocated"] = int(ds.BitsAllocated)
    out["modality"] = str(ds.get("Modality", ""))
    meta = getattr(ds, "file_meta", None)
    tsuid = str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None
    out["transfer_syntax_uid"] = tsuid
    f0 = arr[0] if out["frames"] > 1 else arr
    rescale = frame_rescale(ds, 0)
    out["rescale"] = None if rescale is None or "ModalityLUTSequence" in ds else {"slope": rescale[0], "intercept": rescale[1]}
    out["modality_lut"] = "ModalityLUTSequence" in ds
    orientation = frame_attr(ds, 0, "PlaneOrientationSequence", "ImageOrientationPatient")
    out["orientation"] = [float(v) for v in orientation] if orientation is not None else None
    positions = [frame_attr(ds, i, "PlanePositionSequence", "ImagePositionPatient") for i in range(out["frames"])]
    if "PerFrameFunctionalGroupsSequence" not in ds:
        positions = positions[:1]
    out["positions"] = [[float(v) for v in p] for p in positions] if all(p is not None for p in positions) else []
    if out["photometric"].startswith("MONOCHROME") and "ModalityLUTSequence" not in ds and is_enhanced(ds):
        slope, intercept = rescale if rescale is not None else (1.0, 0.0)
        values = f0.astype(np.float64) * slope + intercept
    elif out["photometric"].startswith("MONOCHROME"):
        values = apply_modality_lut(f0, ds).astype(np.float64)
    elif out["photometric"] == "PALETTE COLOR":
        values = apply_color_lut(f0, ds).astype(np.float64)
    else:
        values = f0.astype(np.float64)  # pydicom 3 returns RGB for YBR data
    out["min"] = float(values.min())
    out["max"] = float(values.max())
    out["mean"] = float(values.mean())
    return out


def main() -> None:
    folder = Path(sys.argv[1])
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".dcm")
    json.dump([describe(p) for p in files], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
