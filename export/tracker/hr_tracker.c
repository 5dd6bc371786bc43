/* hr_tracker.c: see hr_tracker.h. Operation order matches edgekd/tracking.py (float32, sequential sums).
 * Single precision only (no double arithmetic, no double libm): a Cortex-M4F/M33 FPU has no double unit. */
/* Bit-exact with NumPy needs each multiply and add rounded on its own: no fused multiply-add contraction,
 * whatever the build's flags (GCC contracts by default in its GNU C modes, e.g. to vfma on a Cortex-M4F). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "hr_tracker.h"

#include <math.h>

#define HR_TRACKER_SQRT2 1.41421354f /* float32(sqrt(2)): edgekd.tracking.SQRT2_F32 */

int hr_tracker_init(hr_tracker_t *tr, float sigma_bpm, float temperature, hr_tracker_kind_t kind, float floor_p)
{
    int i, band;
    float sum = 0.0f;
    if (!(sigma_bpm > 0.0f) || !(temperature > 0.0f) || !(floor_p >= 0.0f) || !(floor_p < 1.0f)) {
        return -1;
    }
    if (kind != HR_TRACKER_GAUSSIAN && kind != HR_TRACKER_LAPLACE) {
        return -1;
    }
    band = (int)ceilf(4.0f * sigma_bpm);
    if (band > HR_TRACKER_MAX_BAND) {
        band = HR_TRACKER_MAX_BAND;
    }
    tr->band = band;
    for (i = 0; i <= 2 * band; ++i) {
        float d = (float)(i - band);
        float w;
        if (kind == HR_TRACKER_GAUSSIAN) {
            float u = d / sigma_bpm;
            w = expf(-0.5f * (u * u));
        } else {
            float b = sigma_bpm / HR_TRACKER_SQRT2; /* Laplace scale with std sigma */
            w = expf(-fabsf(d) / b);
        }
        tr->kernel[i] = w;
        sum += w;
    }
    for (i = 0; i <= 2 * band; ++i) {
        tr->kernel[i] = tr->kernel[i] / sum;
    }
    tr->inv_temperature = 1.0f / temperature;
    tr->stay = 1.0f - floor_p;
    tr->spread = floor_p / (float)HR_TRACKER_N_CLASSES;
    hr_tracker_reset(tr);
    return 0;
}

void hr_tracker_reset(hr_tracker_t *tr)
{
    int j;
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        tr->alpha[j] = 0.0f;
    }
    tr->started = 0;
}

int hr_tracker_update_f32(hr_tracker_t *tr, const float *logits)
{
    float a[HR_TRACKER_N_CLASSES];
    float m = logits[0], sum = 0.0f, best_p;
    int j, d, best = 0;
    for (j = 1; j < HR_TRACKER_N_CLASSES; ++j) {
        if (logits[j] > m) {
            m = logits[j];
        }
    }
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        float e = expf((logits[j] - m) * tr->inv_temperature);
        if (tr->started) {
            float pred = 0.0f;
            for (d = -tr->band; d <= tr->band; ++d) { /* pred[j] = sum_d kernel[d] * alpha[j - d] */
                int i = j - d;
                if (i >= 0 && i < HR_TRACKER_N_CLASSES) {
                    pred += tr->kernel[d + tr->band] * tr->alpha[i];
                }
            }
            a[j] = (pred * tr->stay + tr->spread) * e;
        } else {
            a[j] = e;
        }
        sum += a[j];
    }
    best_p = -1.0f;
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        tr->alpha[j] = a[j] / sum;
        if (tr->alpha[j] > best_p) {
            best_p = tr->alpha[j];
            best = j;
        }
    }
    tr->started = 1;
    return best;
}

int hr_tracker_update_i8(hr_tracker_t *tr, const int8_t *logits, float scale, int zero_point)
{
    float z[HR_TRACKER_N_CLASSES];
    int j;
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        z[j] = scale * (float)((int)logits[j] - zero_point);
    }
    return hr_tracker_update_f32(tr, z);
}

float hr_tracker_confidence(const hr_tracker_t *tr, int cls)
{
    float sum = 0.0f;
    int j;
    for (j = cls - HR_TRACKER_CONFIDENCE_HALFWIDTH; j <= cls + HR_TRACKER_CONFIDENCE_HALFWIDTH; ++j) {
        if (j >= 0 && j < HR_TRACKER_N_CLASSES) {
            sum += tr->alpha[j];
        }
    }
    return sum;
}

float hr_tracker_class_to_bpm(int cls)
{
    return (float)(HR_TRACKER_BPM_MIN + cls);
}
