/* The counter edgekd firmware reads around Invoke() and the decoder. Cortex-M (EDGEKD_CORTEX_M, set by the build):
 * SysTick on the processor clock, extended to 64 bits by its wrap interrupt (startup.c); under QEMU with -icount
 * shift=0 the clock advances once per instruction, so a loop of known length (edgekd_calibration_ticks:
 * EDGEKD_CALIBRATION_LOOPS x 2 instructions) converts ticks to instructions. Host: no counter (0). */
#ifndef EDGEKD_TARGET_H_
#define EDGEKD_TARGET_H_

#include <stdint.h>

#define EDGEKD_CALIBRATION_LOOPS 1000000u /* 2 instructions each: subs + bne */

#ifdef EDGEKD_CORTEX_M
#define EDGEKD_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define EDGEKD_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define EDGEKD_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define EDGEKD_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define EDGEKD_ICSR_PENDSTSET (1u << 26)
#ifdef __cplusplus
extern "C" {
#endif
extern volatile uint32_t g_edgekd_systick_wraps;
uint32_t edgekd_stack_used(void); /* startup.c: bytes of stack written since reset (high-water mark) */
#ifdef __cplusplus
}
#endif

static inline void edgekd_target_init(void)
{
    EDGEKD_SYST_RVR = 0xFFFFFFu;
    EDGEKD_SYST_CVR = 0u;
    EDGEKD_SYST_CSR = 7u; /* enable, wrap interrupt, processor clock */
}

static inline uint64_t edgekd_counter(void)
{
    uint32_t wraps, value, pending;
    do {
        wraps = g_edgekd_systick_wraps;
        value = EDGEKD_SYST_CVR;
        pending = EDGEKD_ICSR & EDGEKD_ICSR_PENDSTSET;
    } while (wraps != g_edgekd_systick_wraps);
    /* Reloaded but the wrap interrupt not taken yet: the count is already in the new period. */
    if (pending && value > 0x800000u) {
        wraps++;
    }
    return (uint64_t)wraps * 0x1000000u + (0xFFFFFFu - value);
}

static inline uint64_t edgekd_calibration_ticks(void)
{
    uint32_t n = EDGEKD_CALIBRATION_LOOPS;
    uint64_t t0 = edgekd_counter();
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return edgekd_counter() - t0;
}
#else
static inline uint32_t edgekd_stack_used(void) { return 0u; }
static inline void edgekd_target_init(void) {}
static inline uint64_t edgekd_counter(void) { return 0u; }
static inline uint64_t edgekd_calibration_ticks(void) { return 0u; }
#endif

#endif /* EDGEKD_TARGET_H_ */
