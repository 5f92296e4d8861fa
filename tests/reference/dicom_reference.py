#!/usr/bin/env python3
"""Reference numbers for `delightsam info --json`, computed with pydicom.

Usage: python3 tests/reference/dicom_reference.py ../shared/data/dicom > tests/reference/dicom_reference.json

Needs: pip install pydicom pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle numpy
For every file: whether pydicom decodes it, and for decodable ones the header fields of the
`info --json` contract plus frame-0 statistics: in modality units (pixel_array + apply_modality_lut)
for MONOCHROME, after the palette for PALETTE COLOR, and of the RGB samples for colour files.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut


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
    if out["photometric"].startswith("MONOCHROME"):
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
