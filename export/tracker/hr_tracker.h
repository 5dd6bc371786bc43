/* hr_tracker: causal heart-rate tracker for firmware (C99, no malloc, single-precision float only).
 *
 * The model outputs 180 logits per 8 s window (1-BPM classes, 30..209 BPM), one window every 2 s. This
 * tracker runs the HMM forward pass over those windows: the previous filtered distribution is spread by a
 * banded HR-change kernel (Gaussian or Laplacian, std sigma BPM per step) mixed with a small uniform floor,
 * multiplied by softmax(logits / T), and renormalised; the decoded class is its argmax. O(180 x band) per
 * window, about 1 KB of state. It mirrors edgekd.tracking.causal_filter, which a test checks class for class.
 *
 * Usage:
 *   hr_tracker_t tr;
 *   hr_tracker_init(&tr, 3.0f, 1.0f, HR_TRACKER_GAUSSIAN, 1e-3f);
 *   for each window: int cls = hr_tracker_update_i8(&tr, out->data.int8, out_scale, out_zero_point);
 *                    float bpm = hr_tracker_class_to_bpm(cls);
 *   hr_tracker_reset(&tr) when a new recording / wear session starts.
 * On wrist data, fuse the logits with the window's PPG spectrum first: see hr_spectral.h.
 */
#ifndef HR_TRACKER_H
#define HR_TRACKER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HR_TRACKER_N_CLASSES 180
#define HR_TRACKER_BPM_MIN 30 /* class 0 = 30 BPM (edgekd.bpm.BPM_MIN) */
#define HR_TRACKER_CONFIDENCE_HALFWIDTH 3 /* edgekd.tracking.CONFIDENCE_HALFWIDTH */
#define HR_TRACKER_MAX_BAND 32

typedef enum { HR_TRACKER_GAUSSIAN = 0, HR_TRACKER_LAPLACE = 1 } hr_tracker_kind_t;

typedef struct {
    float alpha[HR_TRACKER_N_CLASSES];            /* filtered posterior after the last update */
    float kernel[2 * HR_TRACKER_MAX_BAND + 1];    /* weights of class offsets -band..band, sum 1 */
    int band;
    float inv_temperature;
    float stay;    /* 1 - floor */
    float spread;  /* floor / 180 */
    int started;   /* 0 until the first window after init/reset */
} hr_tracker_t;

/* Returns 0, or -1 for sigma <= 0, temperature <= 0, floor outside [0, 1) or an unknown kind. */
int hr_tracker_init(hr_tracker_t *tr, float sigma_bpm, float temperature, hr_tracker_kind_t kind, float floor_p);
void hr_tracker_reset(hr_tracker_t *tr);
/* One window of float logits [180]; returns the decoded class 0..179. */
int hr_tracker_update_f32(hr_tracker_t *tr, const float *logits);
/* One window of INT8 logits [180] (TFLite output tensor): logit = scale * (q - zero_point). */
int hr_tracker_update_i8(hr_tracker_t *tr, const int8_t *logits, float scale, int zero_point);
float hr_tracker_class_to_bpm(int cls);
/* Confidence of the last update's class: posterior mass within +-HR_TRACKER_CONFIDENCE_HALFWIDTH classes
 * (BPM) of it, 0..1. Show "no reading" below a threshold (edgekd reports MAE at 90 % / 80 % coverage). */
float hr_tracker_confidence(const hr_tracker_t *tr, int cls);

#ifdef __cplusplus
}
#endif

#endif /* HR_TRACKER_H */
