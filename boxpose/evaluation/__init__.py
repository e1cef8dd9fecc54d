"""boxpose.evaluation: the metrics, on plain arrays and files.

Nothing here imports boxpose.data or boxpose.models, so these functions (and the CLIs) can score a
predictions file that boxpose did not produce.

- :mod:`boxpose.evaluation.mpii`: MPII PCKh, ``gt_valid.mat`` / ``pred.mat``, the MPII test submission
  file; ``python -m boxpose.evaluation.mpii --pred PRED.mat --gt GT.mat``.
- :mod:`boxpose.evaluation.coco`: OKS, OKS-NMS, HRNet's rescoring, keypoint results files, COCOeval;
  ``python -m boxpose.evaluation.coco --gt ANN.json --results RES.json``.
- :mod:`boxpose.evaluation.pck`: the training accuracy (PCK@0.5 between heatmap argmaxes).
"""
