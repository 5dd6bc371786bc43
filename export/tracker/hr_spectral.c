/* hr_spectral.c: see hr_spectral.h. Operation order matches edgekd/fusion.py; single precision only (no double
 * arithmetic, no double libm: a Cortex-M4F/M33 FPU has no double unit). */
/* Bit-exact with NumPy needs each multiply and add rounded on its own: no fused multiply-add contraction,
 * whatever the build's flags (GCC contracts by default in its GNU C modes, e.g. to vfma on a Cortex-M4F). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "hr_spectral.h"

#include <math.h>
#include <stddef.h>

/* Hann window and Goertzel coefficients: const tables in flash, generated from edgekd.fusion. */
#include "hr_spectral_tables.h"

/* Mean of n floats, summed left to right in float (edgekd.fusion.seq_mean). */
static float mean_of(const float *x, int n)
{
    float s = 0.0f;
    int i;
    for (i = 0; i < n; ++i) {
        s += x[i];
    }
    return s / (float)n;
}

/* xw = the mean-removed, Hann-windowed x (what every Goertzel pass over x reads). */
static void windowed(const float *x, float *xw)
{
    float mean = mean_of(x, HR_SPECTRAL_N);
    int n;
    for (n = 0; n < HR_SPECTRAL_N; ++n) {
        xw[n] = (x[n] - mean) * hann[n];
    }
}

/* Goertzel power of the windowed signal xw at the frequency of coefficient c. */
static float goertzel(const float *xw, float c)
{
    float s1 = 0.0f, s2 = 0.0f;
    int n;
    for (n = 0; n < HR_SPECTRAL_N; ++n) {
        float s0 = (xw[n] + c * s1) - s2;
        s2 = s1;
        s1 = s0;
    }
    return (s1 * s1 + s2 * s2) - (c * s1) * s2;
}

/* Goertzel power of the mean-removed, Hann-windowed x at the n_bins frequencies of coeff; out += power. */
static void goertzel_add(const float *x, const float *coeff, int n_bins, float *out)
{
    float xw[HR_SPECTRAL_N];
    int k;
    windowed(x, xw);
    for (k = 0; k < n_bins; ++k) {
        out[k] = out[k] + goertzel(xw, coeff[k]);
    }
}

/* Multiply ev[] by the attenuation near the strongest ACC peaks (edgekd.baseline.acc_suppression). */
static void suppress_motion(const float *acc, float *ev)
{
    int peaks[HR_SPECTRAL_ACC_BINS];
    unsigned char used[HR_SPECTRAL_ACC_BINS];
    int n_peaks = 0, i, j, p, h;
    float mean = mean_of(acc, HR_SPECTRAL_ACC_BINS);
    if (!(mean > 0.0f)) {
        return;
    }
    for (i = 1; i < HR_SPECTRAL_ACC_BINS - 1; ++i) {
        if (acc[i] > acc[i - 1] && acc[i] >= acc[i + 1] && acc[i] > HR_SPECTRAL_ACC_PROMINENCE * mean) {
            used[n_peaks] = 0;
            peaks[n_peaks++] = i;
        }
    }
    /* The HR_SPECTRAL_ACC_PEAKS strongest; on equal power the lower frequency (Python's stable sort). */
    for (p = 0; p < HR_SPECTRAL_ACC_PEAKS && p < n_peaks; ++p) {
        int best = -1;
        float f;
        for (j = 0; j < n_peaks; ++j) {
            if (!used[j] && (best < 0 || acc[peaks[j]] > acc[peaks[best]])) {
                best = j;
            }
        }
        used[best] = 1;
        for (h = 1; h <= HR_SPECTRAL_ACC_HARMONICS; ++h) {
            f = (float)h * (float)(HR_SPECTRAL_ACC_MIN_BPM + peaks[best]);
            for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
                if (fabsf((float)(HR_TRACKER_BPM_MIN + j) - f) <= HR_SPECTRAL_ACC_TOL_BPM) {
                    ev[j] = HR_SPECTRAL_ACC_ATTENUATION;
                }
            }
        }
    }
}

/* evidence[] holds the PPG power at the classes: suppress the motion of acc (NULL: none), scale to max 1. */
static void finish_evidence(const float *acc, float *evidence)
{
    float w[HR_TRACKER_N_CLASSES];
    float peak = 0.0f;
    int j;
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        w[j] = 1.0f;
    }
    if (acc != NULL) {
        suppress_motion(acc, w);
    }
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        evidence[j] = evidence[j] * w[j];
        if (evidence[j] > peak) {
            peak = evidence[j];
        }
    }
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        evidence[j] = peak > 0.0f ? evidence[j] / peak : 0.0f;
    }
}

static void zero(float *x, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        x[i] = 0.0f;
    }
}

/* Summed power of the three ACC axes at the n_bins frequencies of coeff (x + y + z, in that order). */
static void acc_power(const float *acc_x, const float *acc_y, const float *acc_z, const float *coeff, int n_bins,
                      float *out)
{
    zero(out, n_bins);
    goertzel_add(acc_x, coeff, n_bins, out);
    goertzel_add(acc_y, coeff, n_bins, out);
    goertzel_add(acc_z, coeff, n_bins, out);
}

void hr_spectral_evidence(const float *ppg, const float *acc_x, const float *acc_y, const float *acc_z,
                          float *evidence)
{
    zero(evidence, HR_TRACKER_N_CLASSES);
    goertzel_add(ppg, coeff_ppg, HR_TRACKER_N_CLASSES, evidence);
    if (acc_x != NULL && acc_y != NULL && acc_z != NULL) {
        float acc[HR_SPECTRAL_ACC_BINS];
        acc_power(acc_x, acc_y, acc_z, coeff_acc, HR_SPECTRAL_ACC_BINS, acc);
        finish_evidence(acc, evidence);
    } else {
        finish_evidence(NULL, evidence);
    }
}

/* Natural log of x > 0 in single precision with a fixed operation order (frexpf is exact; then only + - * /),
 * so it gives the same bits on every IEEE float unit: edgekd.spectral_input.log32 mirrors it, and libm's logf
 * (not correctly rounded, and different between glibc and newlib) would make the spectral student's int8 input
 * differ between the host and the device. Error about 2 ulp. */
static float log_portable(float x)
{
    int e;
    float m = frexpf(x, &e), s, z, p;
    if (m < 0.707106769f) {
        m = m * 2.0f;
        e = e - 1;
    }
    s = (m - 1.0f) / (m + 1.0f);
    z = s * s;
    p = (((0.111111112f * z + 0.142857149f) * z + 0.200000003f) * z + 0.333333343f) * z + 1.0f;
    return (float)e * 0.693147182f + (s + s) * p;
}

/* out[k] = log(floor + power[k] / max power) over the classes (edgekd.spectral_input._log_normalised). */
static void log_normalised(const float *power, float *out)
{
    float peak = power[0];
    int k;
    for (k = 1; k < HR_TRACKER_N_CLASSES; ++k) {
        if (power[k] > peak) {
            peak = power[k];
        }
    }
    for (k = 0; k < HR_TRACKER_N_CLASSES; ++k) {
        out[k] = log_portable(HR_SPECTRAL_FEATURE_FLOOR + (peak > 0.0f ? power[k] / peak : 0.0f));
    }
}

/* Power of the windowed signals xw[0..n_sig) at the frequency of coefficient c, summed in that order (x + y +
 * z for ACC, as acc_power adds them). */
static float summed_power(const float (*xw)[HR_SPECTRAL_N], int n_sig, float c)
{
    float sum = 0.0f;
    int a;
    for (a = 0; a < n_sig; ++a) {
        sum = sum + goertzel(xw[a], c);
    }
    return sum;
}

/* Feature channel `out` [180]: log-normalised power of xw[0..n_sig) at the class BPMs b times mult (twice_mult =
 * 2 mult: 4 for 2 b, 1 for b / 2). Where such a frequency is a whole BPM on `grid` (first bin grid_min BPM,
 * n_grid 1-BPM bins), the grid's value is the same computation (same coefficient, same order), so it is copied
 * instead of recomputed. */
static void multiple_feature(const float (*xw)[HR_SPECTRAL_N], int n_sig, const float *coeff, int twice_mult,
                             const float *grid, int grid_min, int n_grid, float *out)
{
    float power[HR_TRACKER_N_CLASSES];
    int j;
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        int twice_bpm = twice_mult * (HR_TRACKER_BPM_MIN + j); /* the frequency b * mult in half BPMs */
        int g = twice_bpm / 2 - grid_min;
        power[j] = twice_bpm % 2 == 0 && g >= 0 && g < n_grid ? grid[g] : summed_power(xw, n_sig, coeff[j]);
    }
    log_normalised(power, out);
}

void hr_spectral_features(const float *ppg, const float *acc_x, const float *acc_y, const float *acc_z,
                          float *features, float *evidence)
{
    /* Channels as edgekd.spectral_input: PPG at b, 2 b, b / 2; ACC at b, b / 2, 2 b; log(floor + evidence). */
    float xw[3][HR_SPECTRAL_N];
    float acc[HR_SPECTRAL_ACC_BINS];
    const float (*w)[HR_SPECTRAL_N] = (const float (*)[HR_SPECTRAL_N])xw;
    const int has_acc = acc_x != NULL && acc_y != NULL && acc_z != NULL;
    int k;
    windowed(ppg, xw[0]);
    for (k = 0; k < HR_TRACKER_N_CLASSES; ++k) {
        evidence[k] = goertzel(xw[0], coeff_ppg[k]);
    }
    log_normalised(evidence, features);
    multiple_feature(w, 1, coeff_double, 4, evidence, HR_TRACKER_BPM_MIN, HR_TRACKER_N_CLASSES,
                     features + 1 * HR_TRACKER_N_CLASSES);
    multiple_feature(w, 1, coeff_half, 1, evidence, HR_TRACKER_BPM_MIN, HR_TRACKER_N_CLASSES,
                     features + 2 * HR_TRACKER_N_CLASSES);
    if (has_acc) {
        windowed(acc_x, xw[0]); /* each axis windowed once, for the grid and both multiples */
        windowed(acc_y, xw[1]);
        windowed(acc_z, xw[2]);
        for (k = 0; k < HR_SPECTRAL_ACC_BINS; ++k) {
            acc[k] = summed_power(w, 3, coeff_acc[k]);
        }
        /* ACC power at b: the ACC grid's bins at the class BPMs */
        log_normalised(acc + (HR_TRACKER_BPM_MIN - HR_SPECTRAL_ACC_MIN_BPM), features + 3 * HR_TRACKER_N_CLASSES);
        multiple_feature(w, 3, coeff_half, 1, acc, HR_SPECTRAL_ACC_MIN_BPM, HR_SPECTRAL_ACC_BINS,
                         features + 4 * HR_TRACKER_N_CLASSES);
        multiple_feature(w, 3, coeff_double, 4, acc, HR_SPECTRAL_ACC_MIN_BPM, HR_SPECTRAL_ACC_BINS,
                         features + 5 * HR_TRACKER_N_CLASSES);
    } else {
        for (k = 3 * HR_TRACKER_N_CLASSES; k < 6 * HR_TRACKER_N_CLASSES; ++k) {
            features[k] = log_portable(HR_SPECTRAL_FEATURE_FLOOR);
        }
    }
    finish_evidence(has_acc ? acc : NULL, evidence);
    for (k = 0; k < HR_TRACKER_N_CLASSES; ++k) {
        features[6 * HR_TRACKER_N_CLASSES + k] = log_portable(HR_SPECTRAL_FEATURE_FLOOR + evidence[k]);
    }
}

float hr_spectral_quality(const float *evidence)
{
    float total = 0.0f, peak = 0.0f;
    int j, top = 0;
    for (j = 1; j < HR_TRACKER_N_CLASSES; ++j) {
        if (evidence[j] > evidence[top]) {
            top = j;
        }
    }
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        total += evidence[j];
        if (j >= top - HR_TRACKER_CONFIDENCE_HALFWIDTH && j <= top + HR_TRACKER_CONFIDENCE_HALFWIDTH) {
            peak += evidence[j];
        }
    }
    return total > 0.0f ? peak / total : 0.0f;
}

float hr_spectral_motion(const float *acc_x, const float *acc_y, const float *acc_z)
{
    const float *axes[3];
    float total = 0.0f;
    int a, n;
    if (acc_x == NULL || acc_y == NULL || acc_z == NULL) {
        return 0.0f;
    }
    axes[0] = acc_x;
    axes[1] = acc_y;
    axes[2] = acc_z;
    for (a = 0; a < 3; ++a) {
        float mean = mean_of(axes[a], HR_SPECTRAL_N), s = 0.0f;
        for (n = 0; n < HR_SPECTRAL_N; ++n) {
            float d = axes[a][n] - mean;
            s += d * d;
        }
        /* x + y + z in that order (edgekd.fusion.sum_axes); the first add is exact */
        total = a == 0 ? s / (float)HR_SPECTRAL_N : total + s / (float)HR_SPECTRAL_N;
    }
    return sqrtf(total);
}

void hr_spectral_fuse(float *logits, const float *evidence, float motion, float model_weight, float weight,
                      float floor_p, float clear_quality, float unclear_weight, float motion_g)
{
    int j;
    if (clear_quality > 0.0f || motion_g > 0.0f) {
        int clear = (!(clear_quality > 0.0f) || hr_spectral_quality(evidence) >= clear_quality)
                    && (!(motion_g > 0.0f) || motion < motion_g);
        if (clear) {
            model_weight = 0.0f;
        } else {
            weight = unclear_weight;
        }
    }
    for (j = 0; j < HR_TRACKER_N_CLASSES; ++j) {
        logits[j] = model_weight * logits[j] + weight * logf(floor_p + evidence[j]);
    }
}
