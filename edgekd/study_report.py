"""A study's results as the README's Markdown tables, rendered from the study's JSON record alone.

The record (``models/results/NAME.json``, written by the study, committed beside ``NAME.md``) holds every
number a table shows, so ``edgekd report`` regenerates the tables without the runs that produced them, and a
test proves the committed tables are exactly what their records render (no hand-copied numbers).

Record kinds (each written by its command's ``--table``):

- ``distill`` (`edgekd distill`): teacher, scratch twin and student on one fold;
- ``lodo`` (`edgekd lodo`, edgekd.lodo): leave-one-dataset-out, decoder chosen nested;
- ``rank`` (`edgekd rank`): students by MAE against a deployment cost, with the Pareto front;
- ``firmware`` (`edgekd firmware`): artifacts built with TFLM C++ and run, per target and kernel set;
- ``table3`` (`edgekd bench --table3`): the paper's Table 3;
- ``scaling`` (`edgekd scaling`): the scaling-law fits;
- ``data`` (`edgekd data check`, edgekd.label_check): what each data set holds, and its label check.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any, Callable

from edgekd.errors import EdgekdError
from edgekd.layout import read_json_object

STUDY_SCHEMA = "edgekd.study/1"
# The per-window MAE columns of the LODO table: (row key, header); {previous} / {default} are the decoder labels.
LODO_COLUMNS = (("hmm", "spectral HMM (no model)"), ("argmax", "argmax"), ("causal", "causal"),
                ("fused_previous", "fused {previous} (previous default)"), ("nested_plain", "fused, nested (a, w)"),
                ("nested", "fused, nested (a, w, q, u)"), ("nested_cov90", "same @90 % coverage"),
                ("nested_cov80", "same @80 % coverage"),
                ("hmm_cov80", "HMM @80 %"), ("fused_default", "shipped default {default} (not nested)"))
# Records made since the motion gate (edgekd.fusion.FusionConfig.motion_g) joined the candidates: the nested
# choice without it (the quality switch alone) beside the one with it, so the table shows what the gate changed.
LODO_MOTION_COLUMNS = (("nested_quality", "fused, nested without the motion gate (a, w, q, u)"),
                       ("nested", "fused, nested with it (a, w, q, u, m)"))
LODO_INT8_COLUMNS = (("int8_fused_previous", "INT8 TFLM fused, previous default"),
                     ("int8_nested", "INT8 TFLM fused, nested"), ("int8_argmax_agreement", "INT8 = FP32 argmax"))


def summarise_lodo(rows: list[dict[str, Any]], sets: list[str]) -> list[dict[str, Any]]:
    """Per (student, strategy): the nested fused MAE on each held-out set (mean over seeds), their mean, the
    HMM's mean, and on how many sets it is no worse than the HMM."""
    out = []
    for key in dict.fromkeys((r["student"], r["strategy"]) for r in rows):
        mine = [r for r in rows if (r["student"], r["strategy"]) == key]
        per = {h: mean(r["nested"] for r in mine if r["held_out"] == h) for h in sets}
        hmm = {h: next(r["hmm"] for r in mine if r["held_out"] == h) for h in sets}
        out.append({"student": key[0], "blocks": mine[0]["blocks"], "strategy": key[1],
                    "seeds": len({r["seed"] for r in mine}), **per, "mean": mean(per.values()),
                    "hmm_mean": mean(hmm.values()), "sets_no_worse_than_hmm": sum(per[h] <= hmm[h] for h in sets)})
    return out


def lodo_markdown(record: dict[str, Any]) -> str:
    """The leave-one-dataset-out tables (MAE in BPM on each held-out data set)."""
    s, rows, sets = record["settings"], record["rows"], record["sets"]
    summary, n = summarise_lodo(rows, sets), len(sets)
    init = f", initialised from `{s['init_from']}`" if s.get("init_from") else ""
    article = "an" if str(s["teacher_blocks"]) in ("8", "11", "18") else "a"  # the number as it is read aloud
    distilled = (f"; distilled students from {article} {s['teacher_blocks']}-block teacher trained on the same {n - 1} sets"
                 if any(r["strategy"] != "scratch" for r in rows) else "")
    lines = [f"Leave-one-dataset-out (PPG + ACC students, {s['epochs']} epochs, label sigma {s['label_sigma']:g}"
             f"{', --augment' if s.get('augment') else ''}{init}{distilled}). MAE in BPM on each held-out data set; "
             f"the decoder is chosen per fold without the held-out set. {_regenerate(record)}; these tables alone: "
             f"`edgekd report` on this file's `.json` record.", "",
             "| students | seeds | " + " | ".join(f"{h} (HMM {next(r['hmm'] for r in rows if r['held_out'] == h):.2f})"
                                                for h in sets) + " | mean (HMM " + f"{summary[0]['hmm_mean']:.2f}) | "
             "held-out sets no worse than HMM |", "|---|---:|" + "---:|" * (len(sets) + 2)]
    for m in summary:
        lines.append(f"| {m['student']} {m['strategy']} | {m['seeds']} | "
                     + " | ".join(f"{m[h]:.2f}" for h in sets)
                     + f" | {m['mean']:.2f} | {m['sets_no_worse_than_hmm']} of {len(sets)} |")
    cols = [(k, h.format(**record["decoders"])) for k, h in LODO_COLUMNS]
    if any("nested_quality" in r for r in rows):
        at = [k for k, _ in cols].index("nested")
        cols[at:at + 1] = LODO_MOTION_COLUMNS
    if any("int8_nested" in r for r in rows):
        cols += LODO_INT8_COLUMNS
    lines += ["", "Per held-out set, first seed of each student:", "",
              "| students | held out | windows | " + " | ".join(c[1] for c in cols) + " | nested choice |",
              "|---|---|---:|" + "---:|" * len(cols) + "---|"]
    first = {(r["student"], r["strategy"]): r["seed"] for r in reversed(rows)}
    for r in rows:
        if r["seed"] != first[(r["student"], r["strategy"])]:
            continue
        lines.append(f"| {r['student']} {r['strategy']} | {r['held_out']} | {r['windows']} | "
                     + " | ".join(f"{r[k]:.2f}" if k in r else "" for k, _ in cols) + f" | {r['choice']} |")
    if s.get("inner", "datasets") == "datasets":
        chooses, pool = "the decoder with the lowest mean MAE / HMM MAE over the inner directions (models trained on one " \
                        "remaining set, scored on another)", f"all {n * (n - 1)} directions"
    else:
        chooses = ("by nested cross-validation: the decoder with the lowest mean MAE / HMM MAE over the remaining "
                   f"sets, each scored on the out-of-fold outputs of {s.get('inner_folds', 'K')} subject folds of "
                   "the fold's training data")
        pool = f"the inner subject folds of all {n} held-out sets"
    lines[0] += f" Each fold chooses {chooses}."
    ppg_only = list(dict.fromkeys(r["held_out"] for r in rows if r.get("held_out_acc") is False))
    if ppg_only:  # records before the device view lack the key
        lines[0] += (f" A held-out set without accelerometer ({', '.join(ppg_only)}) is a PPG-only device: its fold "
                     "scores the inner windows with their ACC zeroed (no ACC suppression, no motion).")
    lines += ["", f"Decoder the same rule picks over {pool} (what to ship for unseen data; not a held-out result): "
              + "; ".join(f"{b}: {c}" for b, c in record["shipped_decoder"].items()) + "."]
    if record.get("within"):
        lines += ["", *_within_markdown(record)]
    lines += ["", "In hindsight (a sensitivity, not a result: chosen on the held-out sets it is scored on): the best "
                  "single decoder per student, mean over seeds; and how many of the candidate decoders are no worse "
                  f"than the HMM on all {n} sets:", ""]
    lines += [f"- {k}: {v['decoder']}, " + " / ".join(f"{v['mae'][h]:.2f}" for h in sets)
              + f" (mean {v['mean']:.2f}); {v['never_worse_than_hmm']} of {v['candidates']} candidates never worse "
                f"than the HMM" for k, v in record["hindsight"].items()]
    return "\n".join(lines) + "\n"


def _within_markdown(record: dict[str, Any]) -> list[str]:
    """The within-distribution table beside the held-out one: each set's fused MAE when its subjects are held out
    of K-fold cross-validation over all the sets together (mean over seeds) against the held-out rows scored with
    the same decoder (their shipped-default column), then per set for the first seed."""
    rows, sets, k = record["within"], record["sets"], record["settings"]["within_folds"]
    lines = [f"Beside it, within distribution: {k}-fold subject-independent cross-validation over all {len(sets)} sets "
             "together (every subject held out once; its device and motions seen in training, as leave-one-subject-"
             f"out measures). Both sides scored with the decoder the family ships ({rows[0]['decoder']}; nothing "
             "chosen per fold, and it was itself picked on inner folds of these sets): fused MAE, mean over seeds, "
             "within / held out (the table above's shipped-default column; its nested columns choose per fold):", "",
             "| students | seeds | " + " | ".join(f"{h} (HMM {next(r['hmm'] for r in rows if r['data_set'] == h):.2f})"
                                                for h in sets) + " | mean |", "|---|---:|" + "---:|" * (len(sets) + 1)]
    for key in dict.fromkeys((r["student"], r["strategy"]) for r in rows):
        mine = [r for r in rows if (r["student"], r["strategy"]) == key]
        per = {h: mean(r["fused"] for r in mine if r["data_set"] == h) for h in sets}
        out = [r for r in record["rows"] if (r["student"], r["strategy"]) == key]
        held = {h: mean(r["fused_default"] for r in out if r["held_out"] == h) for h in sets} if out else None
        lines.append(f"| {key[0]} {key[1]} | {len({r['seed'] for r in mine})} | "
                     + " | ".join(f"{per[h]:.2f} / {held[h]:.2f}" if held else f"{per[h]:.2f}" for h in sets)
                     + f" | {mean(per.values()):.2f}" + (f" / {mean(held.values()):.2f}" if held else "") + " |")
    cols = (("hmm", "HMM"), ("argmax", "argmax"), ("causal", "causal"), ("fused", "fused"),
            ("fused_cov90", "fused @90 %"), ("fused_cov80", "fused @80 %"))
    lines += ["", "Within distribution per set, first seed of each student:", "",
              "| students | data set | subjects | windows | " + " | ".join(h for _, h in cols) + " |",
              "|---|---|---:|---:|" + "---:|" * len(cols)]
    first = {(r["student"], r["strategy"]): r["seed"] for r in reversed(rows)}
    lines += [f"| {r['student']} {r['strategy']} | {r['data_set']} | {r['subjects']} | {r['windows']} | "
              + " | ".join(f"{r[c]:.2f}" for c, _ in cols) + " |"
              for r in rows if r["seed"] == first[(r["student"], r["strategy"])]]
    return lines


def _regenerate(record: dict[str, Any]) -> str:
    """How to make the record again: its command, or for a record made before a protocol change (``predates``),
    that its command now runs the study under today's protocol."""
    if record.get("predates"):
        return (f"Made before {record['predates']}; `{record['command']}` runs the same study under today's "
                "protocol")
    return f"Regenerate: `{record['command']}`"


# The rank table's optional columns: (row key, header, format), shown when some row has a value.
RANK_COSTS = (("weights_kb", "INT8 weights KB (est.)", "{:.1f}"), ("flatbuffer_kb", "flatbuffer KB", "{:.1f}"),
              ("flash_kb", "flash KB (image)", "{:.1f}"), ("arena_kb", "arena KB", "{:.1f}"),
              ("mcu_instructions_m", "M instructions / window", "{:.2f}"), ("mcu_latency_ms", "MCU ms / window", "{:.1f}"),
              ("latency_ms", "measured ms / window", "{:.3f}"))
RANK_MEANS = {"lodo": "mean over the held-out data sets and seeds (fused: the decoder chosen nested)",
              "sweep": "mean over folds and seeds"}


def rank_markdown(record: dict[str, Any]) -> str:
    """Students by MAE against a deployment cost, cheapest first; Pareto = no other is as cheap and as accurate."""
    rows, metric, cost = record["rows"], record["metric"], record["cost_column"]
    # host latency (benchmark records) only when it is the cost: beside MCU figures it reads as one of them
    shown = [c for c in RANK_COSTS if any(r.get(c[0]) is not None for r in rows)
             and (c[0] != "latency_ms" or cost == "latency_ms")]
    fits = "fits" in rows[0]
    hmm = f" (the spectral HMM alone: {record['hmm']:.2f})" if record.get("hmm") is not None else ""
    lines = [f"Students ranked by {record['cost_label']}: {metric} in BPM, {RANK_MEANS[record['source_kind']]}{hmm}. "
             f"Pareto: no other student is as cheap and as accurate. Sizes: INT8 weights from the size table, the "
             f"exported flatbuffer, the linked firmware image (flash). {_regenerate(record)}.", "",
             "| student | runs | " + metric + " | std | " + "".join(f"{h} | " for _, h, _ in shown)
             + "MACs | params | Pareto |" + (" fits " + record["budget"] + " |" if fits else ""),
             "|---|---:|---:|---:|" + "---:|" * (len(shown) + 2) + "---|" + ("---|" if fits else "")]
    for r in rows:
        std = r.get(f"{metric}_std")
        lines.append(f"| {r['name']} | {r['runs']} | {r[metric]:.2f} | {'-' if std is None else f'{std:.2f}'} | "
                     + "".join(("-" if r.get(k) is None else fmt.format(r[k])) + " | " for k, _, fmt in shown)
                     + f"{r['macs']:,} | {r['params']:,} | {'yes' if r['pareto'] else ''} |"
                     + (f" {'yes' if r['fits'] else 'no'} |" if fits else ""))
    lines += ["", f"Pareto is judged on the {cost} column; a student without that cost is not judged."]
    return "\n".join(lines) + "\n"


def _kb(b: float | None) -> str:
    return "-" if b is None else f"{b / 1024:.1f}"


def firmware_markdown(record: dict[str, Any]) -> str:
    """Artifacts built with TFLM C++ and run, per target and kernel set, beside the estimates they replace."""
    lines = [f"Artifacts built with TFLM C++ and run (`edgekd firmware`). {_regenerate(record)}.", "",
             "| model | target | kernels | windows | int8 mismatches | BPM mismatches | arena KB (target / card) | "
             "flash KB (image / est.) | model / TFLM / kernels / libc / decoder KB | RAM KB (static / stack) | "
             "M instr. model + decoder | ms per window (measured est. / MAC est.) |",
             "|---|---|---|---:|---|---:|---|---|---|---|---|---|"]
    for r in record["rows"]:
        parts = r.get("flash_by_component")
        parts = " / ".join(_kb(parts.get(k, 0)) for k in ("model", "tflm", "kernels", "libc", "tracker")) if parts else "-"
        mcu = "ms" in r
        lines.append(
            f"| {r['model']} | {r['target']} | {r['kernels']} | {r['windows']} | {r['int8_mismatches']} of "
            f"{r['int8_values']} (max {r['int8_max_abs_diff']} LSB) | {r['bpm_mismatches']} | {_kb(r['arena_bytes'])} / "
            f"{_kb(r['card_arena_bytes'])} | {_kb(r['flash_bytes'])} / {_kb(r['flash_bytes_est'])} | {parts} | "
            + (f"{_kb(r['ram_bytes'])} / {_kb(r['stack_bytes'])} | {r['instructions_per_inference'] / 1e6:.2f} + "
               f"{r['instructions_per_decode'] / 1e6:.2f} | {r['ms']:.1f} / {r['mac_ms']:.1f} @ {r['clock_mhz']:g} MHz |"
               if mcu else "- | - | - |"))
    rows = {r["estimate_mcu"]: r["cycles_per_mac"] for r in record["rows"] if "estimate_mcu" in r}
    lines += ["", "Image = the linked size build (newlib-nano, no stdio, --gc-sections); est. = what edgekd estimated "
              "before measuring: flatbuffer + the x86 TFLM code table (firmware_bench/static.py), the host "
              "interpreter's arena + 10 %, and MACs x cycles/MAC of an edgekd/mcu_targets.toml row ("
              + ", ".join(f"{k} {v:g}" for k, v in rows.items()) + ") at the target's clock (the model only). "
              "Measured ms = QEMU instructions of Invoke() + the decoder (hr_spectral evidence, fusion, tracker) at CPI "
              "1 and the stated clock: an estimate that counts instructions, not stalls. Stack = high-water mark of "
              "the run build (with semihosting stdio)."]
    return "\n".join(lines) + "\n"


def table3_where(row: dict[str, Any]) -> str:
    """What ran a Table 3 row: the GPU's name, or ONNX Runtime on the CPU with its thread count."""
    return row.get("device") or f"ONNX Runtime CPU, {row['threads']} thread(s)"


def table3_markdown(record: dict[str, Any]) -> str:
    """The paper's Table 3 (`edgekd bench --table3`): inference time and peak memory per model size, per runtime,
    and the MCU latency estimates."""
    rows, d = record["rows"], record["device"]
    lines = [f"The paper's Table 3 on {d.get('name') or 'this host'} ({d.get('logical_cpus', '?')} logical CPUs): "
             f"seeded random-init ResNet1D of every size (time does not depend on the weights). "
             f"{_regenerate(record)}.", ""]
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = [r for r in rows if r["runtime"] == runtime]
        first = mine[0]
        lines += [f"{runtime} ({table3_where(first)}): {first['windows']:,} windows, batch {first['batch']}; peak = "
                  f"{first['memory_kind']}.", "",
                  "| blocks | " + " | ".join(str(r["blocks"]) for r in mine) + " |",
                  "|---|" + "---:|" * len(mine),
                  "| time (s) | " + " | ".join(f"{r['time_s']:.2f}" for r in mine) + " |",
                  "| peak (MB) | " + " | ".join(f"{r['peak_memory_bytes'] / 2**20:.1f}" for r in mine) + " |", ""]
    if record.get("mcu"):
        lines += ["MCU latency per window, estimated from MACs (x cycles/MAC / clock; read as +-2x):", "",
                  "| blocks | target | MACs | ms (low / est. / high) |", "|---:|---|---:|---|"]
        lines += [f"| {e['blocks']} | {e['target']} | {e['macs']:,} | {e['latency_low_ms']:.1f} / "
                  f"{e['latency_ms']:.1f} / {e['latency_high_ms']:.1f} |" for e in record["mcu"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def scaling_markdown(record: dict[str, Any]) -> str:
    """The scaling-law fits (`edgekd scaling --table`): MAE = a exp(-b x) + c per teacher and strategy over the
    student sizes x, every fold and seed a point."""
    fits, metric = record["fits"], record["metric"]
    predict = any("predicted_mae" in f for f in fits)

    def se(f: dict[str, Any], k: str) -> str:
        return "-" if f.get(k) is None else f"{f[k]:.3g}"

    lines = [f"MAE = a exp(-b x) + c, x = student blocks, fitted per teacher and strategy to {metric} (BPM) of every "
             f"run (each fold and seed a point); the heat map shows {record.get('heatmap_strategy') or 'no'} "
             f"distillation. {_regenerate(record)}.", "",
             "| teacher | strategy | runs | sizes | a | ± | b | ± | c | ± | R² |" + (" predicted | 95 % PI |" if predict else ""),
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---|" if predict else "")]
    for f in fits:
        head = (f"| {'-' if f['teacher'] is None else str(f['teacher']) + 'b'} | {f['strategy']} | {f['points']} | "
                f"{', '.join(map(str, f['sizes']))} | ")
        if "error" in f:
            lines.append(head + f"not fitted: {f['error']} |" + " |" * (6 + 2 * predict))
            continue
        lines.append(head + " | ".join([f"{f['a']:.3g}", se(f, "a_se"), f"{f['b']:.3g}", se(f, "b_se"),
                                        f"{f['c']:.3g}", se(f, "c_se"), f"{f['r2']:.2f}"]) + " |"
                     + (f" {f['predicted_mae']:.2f} @ {f['predict_x']:g} | {se(f, 'pi_low')} .. {se(f, 'pi_high')} |"
                        if predict and "predicted_mae" in f else (" - | - |" if predict else "")))
    return "\n".join(lines) + "\n"


def distill_markdown(record: dict[str, Any]) -> str:
    """One `edgekd distill` (teacher, scratch twin, distilled student) on one fold: MAE of each decoding on the
    fold's test subjects, and the cost of each model."""
    def mae(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    teacher = (f" (teacher {record['teacher_epochs']})" if record.get("teacher_epochs") not in (None, record['epochs'])
               else "")
    lines = [f"`edgekd distill` on {record['data']}, fold {record['fold']} test subjects, seed {record['seed']}, "
             f"{record['epochs']} epochs{teacher}"
             f"{', ' + str(record['synthetic']) + ' synthetic training subjects' if record.get('synthetic') else ''}; "
             f"MAE in BPM (tracked: the causal tracker on the model alone; fused: the shipped decoder). "
             f"{_regenerate(record)}.", "",
             "| model | architecture | MAE argmax | MAE tracked | MAE fused | params | MACs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['architecture']}, {r['in_channels']} channels in | {mae(r['mae_argmax'])} | "
              f"{mae(r['mae_causal'])} | {mae(r['mae_fused'])} | {r['params']:,} | {r['macs']:,} |"
              for r in record["rows"]]
    return "\n".join(lines) + "\n"


def data_markdown(record: dict[str, Any]) -> str:
    """`edgekd data check`: what each data set holds, and how often its labels agree with the spectral peak against
    the same labels moved later and another subject's HR (edgekd.label_check)."""
    def share(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.1f} %"

    rows, tol, stride = record["rows"], record["tolerance_bpm"], record["stride_s"]
    later = [f"{k * stride:g} s later" for k in record["shifts"]]
    lines = [f"What each prepared data set holds, and whether its labels line up with its signal: the share of "
             f"checked windows whose spectral peak (ACC-suppressed where there is ACC) is within {tol:g} BPM of the "
             f"label, of the same labels moved {' and '.join(later)} in their recording, and of another subject's "
             f"median HR. {_regenerate(record)}.", "",
             "| data set | windows | subjects | recordings | channels | HR BPM (min-max, std) | dropped windows | "
             f"prepared in | checked windows | peak within {tol:g} BPM | " + " | ".join(later) + " | other subject |",
             "|---|---:|---:|---:|---|---|---|---:|---|---:|" + "---:|" * len(later) + "---:|"]
    for r in rows:
        dropped = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in r["dropped"].items()) or "none"
        seconds = "-" if r.get("prepare_s") is None else f"{r['prepare_s']:.2f} s"
        lines.append(f"| {r['dataset']} | {r['windows']:,} | {r['subjects']} | {r['recordings']} | "
                     f"{', '.join(r['channels'])} | {r['hr_min']:.0f}-{r['hr_max']:.0f}, {r['hr_std']:.1f} | "
                     f"{dropped} | {seconds} | {r['checked_windows']:,} ({r['checked']}) | {share(r['aligned'])} | "
                     + "".join(f"{share(r['shifted'][str(k)])} | " for k in record["shifts"])
                     + f"{share(r['other_subject'])} |")
    activities = [r for r in rows if r["activities"]]
    if activities:
        lines += ["", "Activities: " + "; ".join(
            f"{r['dataset']}: " + ", ".join(f"{a.replace('_', ' ')} {c:,}" for a, c in r["activities"].items())
            for r in activities) + "."]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"distill": distill_markdown, "lodo": lodo_markdown,
                                                         "rank": rank_markdown,
                                                         "firmware": firmware_markdown, "table3": table3_markdown,
                                                         "scaling": scaling_markdown, "data": data_markdown}


def record_kind(path: Path) -> str | None:
    """The study a file's record is of (its ``study``), or None when the file is missing or holds JSON that is not
    a study record (a sweep's results, `rank --out`'s list); EdgekdError naming the file when it is not JSON."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgekdError(f"{path}: unreadable JSON ({exc})") from None
    return str(doc.get("study")) if isinstance(doc, dict) and doc.get("schema") == STUDY_SCHEMA else None


def read_record(path: Path) -> dict[str, Any]:
    """A study record; EdgekdError naming the file when it is not one this version renders."""
    record = read_json_object(path, "not a study record (not valid JSON)")
    if record.get("schema") != STUDY_SCHEMA:
        raise EdgekdError(f"{path}: not a study record (schema {record.get('schema')!r}, expected {STUDY_SCHEMA!r})")
    if record.get("study") not in RENDERERS:
        raise EdgekdError(f"{path}: unknown study {record.get('study')!r} (known: {', '.join(RENDERERS)})")
    return record


def render(path: Path) -> str:
    """The Markdown tables of the record at ``path``."""
    return render_record(read_record(path), path)


def render_record(record: dict[str, Any], source: Path) -> str:
    """The Markdown tables of ``record`` (read from, or about to be written to, ``source``)."""
    try:
        return RENDERERS[record["study"]](record)
    except (KeyError, IndexError, TypeError, ValueError, StopIteration, AttributeError) as exc:
        raise EdgekdError(f"{source}: incomplete {record['study']} record ({type(exc).__name__}: {exc})") from None


def table_path(record: Path) -> Path:
    """Where a record's tables go: beside it, same stem (models/results/lodo-x.json -> lodo-x.md)."""
    return record.with_suffix(".md")
