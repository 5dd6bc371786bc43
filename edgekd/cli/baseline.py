"""`edgekd baseline`: the classical spectral-tracking heart-rate estimator (no learning), MAE overall and per subject."""

from __future__ import annotations

import argparse

from edgekd.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline", help="MAE of a no-learning spectral peak tracker (ACC-frequency suppression)",
        description="Per 8 s window: PPG periodogram over 30-209 BPM, bins near the dominant accelerometer "
                    "frequencies and harmonics attenuated (when the data has ACC channels), then the peak "
                    "nearest the previous estimate is tracked per recording (--method peak), or the firmware's "
                    "causal HMM tracker runs on that spectrum at the 180 class BPMs (--method hmm, "
                    "export/tracker/hr_spectral.c + hr_tracker.c with no model). Prints MAE in BPM overall and "
                    "per subject: the row to beat for any learned model.")
    p.add_argument("--data", metavar="FILE", help="WindowSet .npz (default: the embedded synthetic corpus)")
    p.add_argument("--ppg-only", action="store_true", help="ignore ACC channels (no motion suppression)")
    p.add_argument("--method", choices=("peak", "hmm"), default="peak",
                   help="peak: nearest-peak tracking on a fine FFT (default); hmm: causal HMM tracker on the "
                        "1-BPM spectral evidence")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekd.baseline import mae_report, run_baseline
    from edgekd.data import load_windows
    from edgekd.fusion import spectral_track

    ws = load_windows(args.data)
    if args.ppg_only:
        ws = ws.ppg_only()
    if args.method == "peak":
        _, report = run_baseline(ws)
    else:
        report = mae_report(ws, spectral_track(ws))
    report["method"] = args.method
    report["data"] = args.data or "synthetic default"
    if args.json:
        print_json(report)
        return 0
    rows = [{"subject": s, "windows": int((ws.subject == s).sum()), "mae_bpm": m}
            for s, m in report["per_subject"].items()]
    rows.append({"subject": "ALL", "windows": report["windows"], "mae_bpm": report["mae"]})
    acc = "with ACC suppression" if report["uses_acc"] else "PPG only"
    print_table(rows, ["subject", "windows", "mae_bpm"], ["subject", "windows", "MAE (BPM)"],
                title=f"spectral baseline, {args.method} tracking ({acc}) on {report['data']}")
    return 0
