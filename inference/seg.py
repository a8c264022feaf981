"""DICOM Segmentation (BINARY) of the lungs and the opacity classes, with highdicom.

Segments (overlapping, which BINARY SEG allows and OHIF shows):

| # | label | category | type |
| --- | --- | --- | --- |
| 1 | Right lung | SCT 91723000 Anatomical Structure | SCT 3341006 Right lung |
| 2 | Left lung | SCT 91723000 Anatomical Structure | SCT 44029006 Left lung |
| 3 | Ground-glass opacity | SCT 49755003 Morphologically Abnormal Structure | DCM 112120 Ground glass opacity |
| 4 | Consolidation | SCT 49755003 Morphologically Abnormal Structure | SCT 95436008 Lung consolidation |

The lung segments include their opacity. Lung, category and GGO codes come from
pydicom's code dictionary. pydicom does not list the SNOMED CT codes for right lung,
left lung and consolidation, so those were taken from SNOMED CT directly.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from highdicom.color import CIELabColor
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, Segmentation
from inference.volume import CTVolume

RIGHT_LUNG_CODE = hd.sr.CodedConcept("3341006", "SCT", "Right lung")
LEFT_LUNG_CODE = hd.sr.CodedConcept("44029006", "SCT", "Left lung")
CONSOLIDATION_CODE = hd.sr.CodedConcept("95436008", "SCT", "Lung consolidation")

# (segment number, label, category, type, display colour as RGB): GGO yellow and
# consolidation red stay distinct from each other and from the blue/green lungs.
SEGMENTS = [
    (1, "Right lung", codes.SCT.AnatomicalStructure, RIGHT_LUNG_CODE, (70, 130, 230)),
    (2, "Left lung", codes.SCT.AnatomicalStructure, LEFT_LUNG_CODE, (60, 190, 110)),
    (3, "Ground-glass opacity", codes.SCT.MorphologicallyAbnormalStructure, codes.DCM.GroundGlassOpacity, (250, 220, 40)),
    (4, "Consolidation", codes.SCT.MorphologicallyAbnormalStructure, CONSOLIDATION_CODE, (230, 40, 40)),
]
MANUFACTURER = "L3-net Node"


def algorithm(engine: str, version: str) -> hd.AlgorithmIdentificationSequence:
    family = codes.cid7162.ArtificialIntelligence if engine == "l3net" else codes.cid7162.HistogramAnalysis
    return hd.AlgorithmIdentificationSequence(name=engine, family=family, version=version)


def masks(segmentation: Segmentation) -> np.ndarray:
    """(slices, rows, columns, 4) booleans in SEGMENTS order."""
    labels, side = segmentation.labels, segmentation.side
    return np.stack([side == RIGHT_LUNG, side == LEFT_LUNG, labels == GGO, labels == CONSOLIDATION], axis=-1)


def write_seg(volume: CTVolume, segmentation: Segmentation, series_uid: str, sop_uid: str) -> Dataset:
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm(segmentation.engine, segmentation.version),
            display_color=CIELabColor.from_rgb(*rgb),
        )
        for number, label, category, kind, rgb in SEGMENTS
    ]
    return hd.seg.Segmentation(
        source_images=volume.datasets,
        pixel_array=masks(segmentation),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=9001,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"{segmentation.engine} engine",
        software_versions=segmentation.version,
        device_serial_number="0",
        content_label="LUNGOPACITY",
        content_description=f"Lungs and opacity ({segmentation.engine} {segmentation.version})",
        series_description=f"Lung opacity SEG ({segmentation.engine})",
        # BINARY is bit-packed (8 voxels a byte); highdicom allows no compressed syntax for it.
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=True,
    )
