"""edgekd: distil PPG heart-rate ResNets into students a wearable can run."""

__version__ = "0.1.0"
