/* hr_spectral: spectral evidence for the heart-rate classes, fused into the model's logits (C99, no malloc).
 *
 * From the same float window the model reads (PPG, then optionally ACC x, y, z; 200 samples at 25 Hz after
 * edgekd's preprocessing), compute the Hann-windowed PPG power at each class's BPM (Goertzel), attenuate
 * classes near the dominant accelerometer frequencies and their 2nd harmonic, scale to max 1, and add
 * weight * log(floor + evidence) to the logits before hr_tracker_update_f32. About 150 k multiply-adds per
 * window, 2.3 KB of const tables (flash; hr_spectral_tables.h), no static state (reentrant), about 2.5 KB of
 * stack, single precision only.
 * It mirrors edgekd.fusion (spectral_evidence, fuse), which a test checks.
 *
 * Usage (after the model has run on window x):
 *   float ev[HR_TRACKER_N_CLASSES], z[HR_TRACKER_N_CLASSES];
 *   hr_spectral_evidence(x_ppg, x_acc_x, x_acc_y, x_acc_z, ev);   (ACC pointers NULL for a PPG-only device)
 *   for j: z[j] = out_scale * (out->data.int8[j] - out_zero_point);
 *   motion = hr_spectral_motion(x_acc_x, x_acc_y, x_acc_z);        (0 for a PPG-only device)
 *   hr_spectral_fuse(z, ev, motion, model_weight, weight, floor_p, clear_quality, unclear_weight, motion_g);
 *   (the settings: see the model card)
 *   int cls = hr_tracker_update_f32(&tr, z);
 * A spectral student (card: architecture family "spectral") reads hr_spectral_features() instead of the window;
 * that call also gives the evidence, so the hr_spectral_evidence() call above is not needed.
 */
#ifndef HR_SPECTRAL_H
#define HR_SPECTRAL_H

#include "hr_tracker.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HR_SPECTRAL_N 200          /* samples per window (8 s at 25 Hz; edgekd.windowset) */
#define HR_SPECTRAL_ACC_MIN_BPM 18 /* ACC grid: 1-BPM steps from 0.3 Hz ... */
#define HR_SPECTRAL_ACC_BINS (HR_TRACKER_BPM_MIN + HR_TRACKER_N_CLASSES - HR_SPECTRAL_ACC_MIN_BPM) /* ... to 209 */
/* Motion suppression: edgekd.baseline.BaselineConfig defaults (a test checks they agree). */
#define HR_SPECTRAL_ACC_TOL_BPM 10.0f
#define HR_SPECTRAL_ACC_HARMONICS 2
#define HR_SPECTRAL_ACC_ATTENUATION 0.1f
#define HR_SPECTRAL_ACC_PEAKS 3
#define HR_SPECTRAL_ACC_PROMINENCE 2.0f
/* The spectral student's input (edgekd.spectral_input): channels x classes, log(floor + power / max). */
#define HR_SPECTRAL_N_FEATURES 7
#define HR_SPECTRAL_FEATURE_FLOOR 0.01f

/* Evidence [180] in [0, 1] for one window; acc_x/acc_y/acc_z may all be NULL (no motion suppression). */
void hr_spectral_evidence(const float *ppg, const float *acc_x, const float *acc_y, const float *acc_z,
                          float *evidence);
/* The input of a spectral student (edgekd.spectral_input.features) and the window's evidence, from one set of
   Goertzel passes: features [HR_SPECTRAL_N_FEATURES][HR_TRACKER_N_CLASSES] (channel-first: PPG power at each
   class BPM b, at 2 b and at b / 2; summed ACC power at b, b / 2 and 2 b; log(floor + evidence)), evidence [180]
   exactly as hr_spectral_evidence gives it. About 310 k multiply-adds with ACC (80 k PPG-only; a frequency two
   channels share is computed once), about 5 KB of stack; features is the caller's 5 KB. ACC pointers NULL for a PPG-only device. */
void hr_spectral_features(const float *ppg, const float *acc_x, const float *acc_y, const float *acc_z,
                          float *features, float *evidence);
/* Share of the evidence within HR_TRACKER_CONFIDENCE_HALFWIDTH classes of its (first) peak, 0..1: how clear
   the pulse is in this window's spectrum (edgekd.fusion.spectral_quality). */
float hr_spectral_quality(const float *evidence);
/* How much the wrist moves in this window, in g: sqrt(var x + var y + var z) of the accelerometer axes
   (edgekd.fusion.window_motion); 0 when the pointers are NULL. 600 multiply-adds and 1.2 k adds. */
float hr_spectral_motion(const float *acc_x, const float *acc_y, const float *acc_z);
/* In place: logits[k] = a * logits[k] + w * logf(floor_p + evidence[k]) with (a, w) = (model_weight, weight),
   or, when clear_quality > 0 or motion_g > 0, (0, weight) on a clear window (hr_spectral_quality >=
   clear_quality where clear_quality > 0, and motion < motion_g where motion_g > 0: the spectrum decides alone)
   and (model_weight, unclear_weight) on the others (edgekd.fusion.fuse). */
void hr_spectral_fuse(float *logits, const float *evidence, float motion, float model_weight, float weight,
                      float floor_p, float clear_quality, float unclear_weight, float motion_g);

#ifdef __cplusplus
}
#endif

#endif /* HR_SPECTRAL_H */
