"""Temporal decoders (edgekd.tracking) and the firmware C tracker (export/tracker) that must agree with them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekd.bpm import BPM_MIN, N_CLASSES, bpm_to_class
from edgekd.errors import EdgekdError
from edgekd.tracking import (CONFIDENCE_HALFWIDTH, TrackerConfig, causal_filter, causal_track, decode_recordings, dequantize,
                             transition_kernel, viterbi)
from c_harness import TRACKER_DIR, compile_tracker_harness


# Test main: argv = f32|i8 sigma temperature kind floor scale zero_point T in.bin out.bin.
# Reads T x 180 logits (float32 or int8), writes T int32 classes, T float32 confidences, then the final
# 180 float32 state.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hr_tracker.h"
int main(int argc, char **argv) {
    if (argc != 11) return 3;
    int is_i8 = strcmp(argv[1], "i8") == 0, T = atoi(argv[8]), t;
    float *confs = malloc(sizeof(float) * (T > 0 ? T : 1));
    float scale = strtof(argv[6], NULL); int zp = atoi(argv[7]);
    hr_tracker_t tr;
    if (hr_tracker_init(&tr, strtof(argv[2], NULL), strtof(argv[3], NULL),
                        (hr_tracker_kind_t)atoi(argv[4]), strtof(argv[5], NULL)) != 0) return 4;
    FILE *in = fopen(argv[9], "rb"), *out = fopen(argv[10], "wb");
    if (!in || !out) return 5;
    for (t = 0; t < T; ++t) {
        int cls;
        if (is_i8) { int8_t q[HR_TRACKER_N_CLASSES]; if (fread(q, 1, sizeof q, in) != sizeof q) return 6;
                     cls = hr_tracker_update_i8(&tr, q, scale, zp); }
        else { float z[HR_TRACKER_N_CLASSES]; if (fread(z, 4, HR_TRACKER_N_CLASSES, in) != HR_TRACKER_N_CLASSES) return 6;
               cls = hr_tracker_update_f32(&tr, z); }
        int32_t c32 = cls; fwrite(&c32, 4, 1, out);
        confs[t] = hr_tracker_confidence(&tr, cls);
    }
    fwrite(confs, 4, T, out);
    fwrite(tr.alpha, 4, HR_TRACKER_N_CLASSES, out);
    fclose(in); fclose(out);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_tracker(tmp_path_factory) -> Path:
    return compile_tracker_harness(tmp_path_factory.mktemp("tracker"), HARNESS, ("hr_tracker.c",))


def _run_c(exe: Path, tmp: Path, logits: np.ndarray, cfg: TrackerConfig, scale: float = 0.0,
           zp: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    is_i8 = logits.dtype == np.int8
    (tmp / "in.bin").write_bytes(np.ascontiguousarray(logits).tobytes())
    kind = {"gaussian": 0, "laplace": 1}[cfg.kind]
    subprocess.run([str(exe), "i8" if is_i8 else "f32", repr(cfg.sigma_bpm), repr(cfg.temperature), str(kind),
                    repr(cfg.floor), repr(scale), str(zp), str(len(logits)), str(tmp / "in.bin"),
                    str(tmp / "out.bin")], check=True)
    raw = (tmp / "out.bin").read_bytes()
    t = len(logits)
    return (np.frombuffer(raw[:4 * t], dtype=np.int32), np.frombuffer(raw[4 * t:8 * t], dtype=np.float32),
            np.frombuffer(raw[8 * t:], dtype=np.float32))


def _peaked(rng: np.random.Generator, t: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A slowly varying HR path; logits = log of a bump at the true class, plus on 20 % of windows a stronger
    artefact bump elsewhere (so argmax is wrong there, as with motion artefacts), plus noise."""
    hr = np.clip(90 + np.cumsum(rng.normal(0, 1.0, t)), 40, 200)
    cls = bpm_to_class(hr)
    grid = np.arange(N_CLASSES)[None, :]
    art = rng.integers(0, N_CLASSES, t)[:, None]
    w_art = np.where(rng.random(t) < 0.2, 2.0, 0.0)[:, None]
    p = np.exp(-0.5 * ((grid - cls[:, None]) / 3.0) ** 2) + w_art * np.exp(-0.5 * ((grid - art) / 3.0) ** 2)
    logits = np.log(p + 1e-3) + rng.normal(0, 0.3, (t, N_CLASSES))
    return logits.astype(np.float32), cls


def test_kernel_sums_to_one_and_is_symmetric():
    for kind in ("gaussian", "laplace"):
        k = transition_kernel(TrackerConfig(sigma_bpm=2.5, kind=kind))
        assert len(k) == 2 * 10 + 1
        assert abs(float(k.sum()) - 1) < 1e-6 and np.allclose(k, k[::-1]) and k.argmax() == 10


@pytest.mark.parametrize("cfg", [TrackerConfig(), TrackerConfig(sigma_bpm=1.5, temperature=2.0, kind="laplace",
                                                                 floor=0.01)])
def test_c_matches_python_float_logits(c_tracker, tmp_path, rng, cfg):
    for logits in (rng.normal(0, 2.0, (120, N_CLASSES)).astype(np.float32), _peaked(rng)[0]):
        py_cls, py_state, py_conf = causal_filter(logits, cfg)
        c_cls, c_conf, c_state = _run_c(c_tracker, tmp_path, logits, cfg)
        np.testing.assert_array_equal(c_cls, py_cls)
        np.testing.assert_allclose(c_conf, py_conf, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c_state, py_state, rtol=1e-4, atol=1e-7)


def test_c_matches_python_int8_logits(c_tracker, tmp_path, rng):
    cfg = TrackerConfig(sigma_bpm=3.0)
    scale, zp = 0.0625, -12
    for logits in (rng.normal(0, 2.0, (100, N_CLASSES)), _peaked(rng)[0]):
        q = np.clip(np.round(logits / scale) + zp, -128, 127).astype(np.int8)
        py_cls, py_state, _ = causal_filter(dequantize(q, scale, zp), cfg)
        c_cls, _, c_state = _run_c(c_tracker, tmp_path, q, cfg, scale, zp)
        np.testing.assert_array_equal(c_cls, py_cls)
        np.testing.assert_allclose(c_state, py_state, rtol=1e-4, atol=1e-7)


def test_c_header_agrees_with_bpm_mapping():
    header = (TRACKER_DIR / "hr_tracker.h").read_text()
    assert f"#define HR_TRACKER_BPM_MIN {BPM_MIN} " in header
    assert f"#define HR_TRACKER_CONFIDENCE_HALFWIDTH {CONFIDENCE_HALFWIDTH} " in header
    assert f"#define HR_TRACKER_N_CLASSES {N_CLASSES}\n" in header


def test_trackers_beat_argmax_on_peaked_sequence(rng):
    logits, truth = _peaked(rng, 300)
    err = {name: np.abs(cls - truth).mean() for name, cls in
           [("argmax", logits.argmax(1)), ("viterbi", viterbi(logits)), ("causal", causal_track(logits))]}
    assert err["viterbi"] < 0.5 * err["argmax"]
    assert err["causal"] < 0.5 * err["argmax"]


def test_viterbi_follows_a_clean_path_exactly(rng):
    truth = bpm_to_class(np.clip(80 + np.cumsum(rng.normal(0, 1.0, 60)), 40, 200))
    logits = np.full((60, N_CLASSES), -5.0)
    logits[np.arange(60), truth] = 5.0
    np.testing.assert_array_equal(viterbi(logits), truth)
    np.testing.assert_array_equal(causal_track(logits), truth)


def test_decode_recordings_is_per_recording(rng):
    logits, truth = _peaked(rng, 80)
    both = np.concatenate([logits, logits[::-1]])
    rec = np.array(["a"] * 80 + ["b"] * 80)
    bpm = decode_recordings(both, rec, "causal")
    # Recording b is decoded from scratch: same as decoding it alone, not continuing a's state.
    np.testing.assert_array_equal(bpm[80:], decode_recordings(logits[::-1], rec[80:], "causal"))
    np.testing.assert_array_equal(decode_recordings(both, rec, "argmax"), both.argmax(1) + BPM_MIN)


def test_bad_inputs_raise():
    with pytest.raises(EdgekdError, match="logits must be"):
        causal_track(np.zeros((5, 10)))
    with pytest.raises(EdgekdError, match="sigma_bpm"):
        TrackerConfig(sigma_bpm=0)
    with pytest.raises(EdgekdError, match="unknown decoder"):
        decode_recordings(np.zeros((2, N_CLASSES)), np.array(["a", "a"]), "beam")


def test_tracker_settings_are_checked_as_the_c_tracker_receives_them(tmp_path, capsys):
    import json

    from edgekd.checkpoint import shipped_tracker
    from edgekd.cli.main import main
    from edgekd.errors import EdgekdError
    from edgekd.tracking import TrackerConfig

    with pytest.raises(EdgekdError, match="sigma_bpm"):
        TrackerConfig(sigma_bpm=1e-46)  # 0 in float32: hr_tracker_init refuses it, so does Python
    with pytest.raises(EdgekdError, match="sigma_bpm must be a number"):
        TrackerConfig(sigma_bpm="abc")  # as a hand-edited card could hold it
    with pytest.raises(SystemExit) as stop:  # [0, 1): refused by the parser
        main(["evaluate", str(tmp_path), "--tracker-floor", "1"])
    assert stop.value.code == 2 and "--tracker-floor" in capsys.readouterr().err
    (tmp_path / "card.json").write_text(json.dumps({"accuracy": {"decoder": {"tracker": [3.0]}}}))
    with pytest.raises(EdgekdError, match=r"card.json: card.s accuracy/decoder/tracker is \[3.0\], not a table"):
        shipped_tracker(tmp_path)
