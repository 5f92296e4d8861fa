#!/usr/bin/env python3
"""Writes the synthetic fixtures in tests/data that no public file covers.

Usage: python3 tests/reference/make_fixtures.py   (from the repository root; needs pydicom, numpy)
"""
import struct
import zlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DATA = Path("tests/data")


def base_dataset(rows, cols, modality):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[modality, str(rows), str(cols)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = rows, cols
    return ds


def signed_32bit():
    """32-bit signed samples with a rescale: values beyond the 16-bit range."""
    ds = base_dataset(12, 16, "CT")
    y, x = np.mgrid[0:12, 0:16]
    pixels = ((x - 8) * 25000 + (y - 6) * 1000).astype(np.int32)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 1
    ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-100"
    ds.PixelData = pixels.tobytes()
    ds.save_as(DATA / "dicom" / "synthetic_32bit_signed.dcm", enforce_file_format=True)


def planar_rgb():
    """RGB with PlanarConfiguration 1 (RRR…GGG…BBB…)."""
    ds = base_dataset(6, 8, "OT")
    y, x = np.mgrid[0:6, 0:8]
    rgb = np.stack([x * 30, y * 40, 255 - x * 10 - y * 5], axis=-1).astype(np.uint8)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    ds.save_as(DATA / "dicom" / "synthetic_rgb_planar.dcm", enforce_file_format=True)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png_header():
    """A valid PNG header that claims 100000×100000 pixels, followed by a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    (DATA / "bad" / "huge_header.png").write_bytes(data)


if __name__ == "__main__":
    (DATA / "dicom").mkdir(parents=True, exist_ok=True)
    (DATA / "bad").mkdir(parents=True, exist_ok=True)
    signed_32bit()
    planar_rgb()
    huge_png_header()
    (DATA / "bad" / "empty.dcm").write_bytes(b"")
    (DATA / "bad" / "not_an_image.png").write_text("This is a text file with a .png name.\n")
