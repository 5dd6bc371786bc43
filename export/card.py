"""The model card: everything a firmware engineer or reviewer needs about one artifact, as JSON and Markdown."""

from __future__ import annotations

from typing import Any

from edgekd.bpm import N_CLASSES

WORST_LAYERS = 5


def card_md(card: dict[str, Any]) -> str:
    """A short human summary of card.json (which stays the complete record)."""
    arch, acc, files = card["architecture"], card.get("accuracy", {}), card["files"]
    lines = [f"# {card['name']}", "",
             f"{arch['description']}, {arch['in_channels']} input channel(s), "
             f"{arch['params']:,} parameters, {arch['macs']:,} MACs per 8 s window.",
             f"Source: `{card['source']['path']}`. Exported with edgekd {card['edgekd_version']} "
             f"in {card['export_seconds']:.1f} s.", "", "## Files", "", "| file | bytes |", "|---|---:|"]
    lines += [f"| `{name}` | {rec['bytes']:,} |" for name, rec in files.items()]
    if "tflm" in card:
        t, q = card["tflm"], card["tflite"]
        lines += ["", "## Firmware", "",
                  f"- Flash (flatbuffer): {files['model_int8.tflite']['bytes']:,} bytes; TFLM tensor arena: "
                  f"{t['arena_bytes']:,} bytes (measured minimum {t['arena_min_bytes']:,} + 10%).",
                  f"- Ops (`ops.h`): {', '.join(t['ops'])}.",
                  f"- Input int8 {q['input']['shape']}: q = round(x / {q['input']['scale']:.6g}) "
                  f"{'-' if q['input']['zero_point'] < 0 else '+'} {abs(q['input']['zero_point'])}; "
                  f"output int8 [1, {N_CLASSES}] ({card['tflm']['c_identifier'].upper()}_NUM_CLASSES): BPM = "
                  f"{card['bpm_min']} + argmax."]
        if card.get("firmware_extras"):
            lines.append(f"- Causal HR tracker for post-processing the per-window outputs, with optional spectral "
                         f"fusion: {', '.join(f'`{f}`' for f in card['firmware_extras'])} (portable C).")
        if "decoder" in acc:
            f, t = acc["decoder"]["fusion"], acc["decoder"]["tracker"]
            p = card["tflm"]["c_identifier"].upper()
            # The macros of model_data.h, with the values they hold (repr() of a float always has a point or an
            # exponent: 4.0f is C, 4f is not).
            lines += [f"- The decoder the accuracy below is for (z = dequantised logits, float[{p}_NUM_CLASSES]; "
                      f"the values are macros of `model_data.h`):", "", "```c",
                      f"hr_tracker_init(&tr, {p}_TRACKER_SIGMA_BPM, {p}_TRACKER_TEMPERATURE, {p}_TRACKER_KIND, "
                      f"{p}_TRACKER_FLOOR);  /* {float(t['sigma_bpm'])!r}f, {float(t['temperature'])!r}f, "
                      f"HR_TRACKER_{t['kind'].upper()}, {float(t['floor'])!r}f; once per recording */",
                      _evidence_line(arch),
                      "float motion = hr_spectral_motion(acc_x, acc_y, acc_z);  /* g; 0 without accelerometer */",
                      f"hr_spectral_fuse(z, evidence, motion, {p}_FUSION_MODEL_WEIGHT, {p}_FUSION_WEIGHT, "
                      f"{p}_FUSION_FLOOR,",
                      f"                 {p}_FUSION_CLEAR_QUALITY, {p}_FUSION_UNCLEAR_WEIGHT, {p}_FUSION_MOTION_G);  /* "
                      f"{float(f['model_weight'])!r}f, {float(f['weight'])!r}f, {float(f['floor'])!r}f, "
                      f"{float(f['clear_quality'])!r}f, {float(f['unclear_weight'])!r}f, "
                      f"{float(f.get('motion_g', 0.0))!r}f */",
                      f"int cls = hr_tracker_update_f32(&tr, z);  /* BPM = {p}_BPM_MIN + cls */", "```",
                      f"- TFLM sources to compile: `kernel_sources.txt`; `edgekd firmware {card['name']} --target "
                      f"cortex-m4` builds and runs all of it under QEMU."]
    if acc:
        ev, on = card["data"]["evaluation"], acc["measured_on"]
        lines += ["", "## Accuracy (MAE in BPM; fused = the decoder above, what firmware reports)", "",
                  f"{on['windows']} held-out windows of {on['subjects']} subject(s), {on['recordings']} recording(s), "
                  f"data set(s) {', '.join(on['datasets'])} ({ev['source']}; subjects "
                  f"{', '.join(ev['subjects'][:8])}{' ...' if len(ev['subjects']) > 8 else ''}).", "",
                  "| runtime | argmax | causal | fused | fused @80 % coverage | argmax agrees with FP32 |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key, m in acc["mae_bpm"].items():
            agree = acc["argmax_agreement_vs_fp32"].get(key)
            lines.append(f"| {key} | {m['mae_argmax']:.3f} | {m['mae_causal']:.3f} | {m['mae_fused']:.3f} | "
                         f"{m['mae_fused_cov80']:.3f} | {'-' if agree is None else f'{100 * agree:.1f}%'} |")
        if "tflm" in card:
            t = card["tflm"]
            lines += ["", f"LiteRT vs TFLM: {100 * t['litert_tflm_identical_values']:.2f}% of int8 outputs "
                          f"identical, {100 * t['litert_tflm_identical_windows']:.1f}% of windows identical, argmax "
                          f"equal on {100 * t['litert_tflm_argmax_agreement']:.1f}% (largest difference "
                          f"{t['litert_tflm_max_abs_int8_diff']} LSB; TFLM's reference kernels round differently)."]
    layers = card.get("per_layer_quantization_error")
    if layers:
        worst = sorted(layers, key=lambda r: -r["rmse_over_scale"])[:WORST_LAYERS]
        lines += ["", "## Where INT8 loses accuracy", "",
                  "Per-op output error vs float (TF QuantizationDebugger); RMSE/scale = 0.29 is pure rounding.",
                  "", "| op | layer | RMSE/scale | max abs error |", "|---|---|---:|---:|"]
        lines += [f"| {r['op']} | {r['layer']} | {r['rmse_over_scale']:.3f} | {r['max_abs_error']:.4g} |"
                  for r in worst]
    return "\n".join(lines) + "\n"


def _evidence_line(arch: dict[str, Any]) -> str:
    """The snippet's evidence step: a spectral student's features give the evidence as well (before Invoke)."""
    front = arch.get("model_input", {}).get("computed_by")
    if front == "hr_spectral_features":
        return ("hr_spectral_features(ppg, acc_x, acc_y, acc_z, features, evidence);  /* before Invoke: the input "
                "is features [7][180] quantised as model_data.h says */")
    return "hr_spectral_evidence(ppg, acc_x, acc_y, acc_z, evidence);  /* the float window */"
