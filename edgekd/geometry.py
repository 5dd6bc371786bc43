"""Window geometry, the one definition every layer reads (data preparation, models, losses, fusion, export,
the firmware constants): WildPPG's protocol of 8 s windows at 25 Hz, a new window every 2 s (75 % overlap).
The BPM grid the models classify into lives beside it in :mod:`edgekd.bpm`."""

FS = 25.0  # Hz, after resampling
WINDOW_S = 8.0
STRIDE_S = 2.0
WINDOW = int(WINDOW_S * FS)  # 200 samples
STRIDE = int(STRIDE_S * FS)  # 50 samples
