"""Export layer: ONNX (FP32 and INT8), INT8 TensorFlow Lite for TFLM, firmware C files and the model card.

`edgekd export` calls :func:`export.artifact.export_artifact`; other layers read the artifact's files and run them
through edgekd.runtimes. TensorFlow is imported only by the modules that need it.
"""

import os

# TensorFlow's C++ INFO/WARNING lines (oneDNN, CPU features) would bury the CLI's tables; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
