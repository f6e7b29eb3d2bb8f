"""Importers: sources that come as volumes or multi-channel slices become class folders of 2-D slices.

Every importer writes the same layout, which the rest of the toolkit reads as it is:

    OUT/<class>/<source>_<patient>_<sequence>_<plane>_<index>.png   8-bit grayscale slices
    OUT/slices.csv    path, source, patient, sequence, plane, slice_index, tumour_area, label
    OUT/groups.csv    path,group: every slice of one patient in one group (`train --groups-csv`), so
                      splits and audits keep a patient's slices together
    OUT/problems.txt  path<TAB>reason for every input that was skipped, and why

`lgg` reads the TCGA lower-grade glioma layout (three-channel TIFF slices with FLAIR masks); `volumes`
reads NIfTI volumes (optionally with masks) and reslices them in the axial, coronal and sagittal planes.
"""

from braintumor.data.sources.lgg import import_lgg
from braintumor.data.sources.volumes import import_volumes
from braintumor.data.sources.writer import ImportResult, SliceOptions, read_slice_table

__all__ = ["ImportResult", "SliceOptions", "import_lgg", "import_volumes", "read_slice_table"]
