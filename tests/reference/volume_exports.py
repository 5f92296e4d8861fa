"""Reads De-LightSAM's volume exports with the reference readers and prints what they see as JSON.

    python volume_exports.py seg OUT.dcm SOURCE_DIR   # DICOM SEG: pydicom + highdicom
    python volume_exports.py nifti OUT.nii.gz         # NIfTI: nibabel

Used by tests/volume_exports.rs (the interpreter is DELIGHTSAM_REFERENCE_PYTHON; .ci/run makes a
virtual environment with pydicom 3.0.2, highdicom 0.28.2 and nibabel 5.4.2).
"""
import json
import os
import sys

import numpy as np


def seg_facts(path, source_dir):
    import highdicom as hd
    import pydicom

    seg = hd.seg.segread(path)
    sources = []
    for name in sorted(os.listdir(source_dir)):
        ds = pydicom.dcmread(os.path.join(source_dir, name), stop_before_pixels=True)
        sources.append(ds)
    uids = [ds.SOPInstanceUID for ds in sources]
    referenced = sorted({
        item.SourceImageSequence[0].ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for item in frame.DerivationImageSequence
    })
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    by_source = {uid: {str(int(v)): int((pixels[i] == v).sum()) for v in np.unique(pixels[i]) if v != 0}
                 for i, uid in enumerate(uids)}
    volume = seg.get_volume(combine_segments=True)
    affine = volume.affine
    return {
        "sop_class": str(seg.SOPClassUID),
        "modality": seg.Modality,
        "segmentation_type": seg.SegmentationType,
        "frame_of_reference": seg.FrameOfReferenceUID,
        "study": seg.StudyInstanceUID,
        "source_study": sources[0].StudyInstanceUID,
        "patient_id": seg.PatientID,
        "source_patient_id": sources[0].PatientID,
        "frames": int(seg.NumberOfFrames),
        "segments": [
            {"number": int(s.SegmentNumber), "label": s.SegmentLabel, "algorithm": s.SegmentAlgorithmType}
            for s in seg.SegmentSequence
        ],
        "referenced": referenced,
        "pixels_by_source": by_source,
        # highdicom orders a volume (slice, row, column); its affine maps that index to LPS mm.
        "volume_shape": list(volume.spatial_shape),
        "volume_column_step": affine[:3, 2].tolist(),
        "volume_row_step": affine[:3, 1].tolist(),
        "volume_slice_origins": [(affine @ np.array([k, 0, 0, 1.0]))[:3].tolist() for k in range(volume.spatial_shape[0])],
    }


def nifti_facts(path):
    import nibabel as nib

    image = nib.load(path)
    data = np.asarray(image.dataobj)
    values, counts = np.unique(data, return_counts=True)
    return {
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "affine": image.affine.tolist(),
        "sform_code": int(image.header["sform_code"]),
        "qform_code": int(image.header["qform_code"]),
        "qform": image.get_qform().tolist(),
        "counts": {str(int(v)): int(c) for v, c in zip(values, counts)},
        # Voxel (i, j, k) of every labelled voxel's first few, to check the axis order.
        "first_labelled": [list(map(int, ijk)) for ijk in np.argwhere(data > 0)[:5]],
    }


if __name__ == "__main__":
    kind = sys.argv[1]
    facts = seg_facts(sys.argv[2], sys.argv[3]) if kind == "seg" else nifti_facts(sys.argv[2])
    print(json.dumps(facts))
