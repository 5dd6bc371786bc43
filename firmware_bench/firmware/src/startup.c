/* Minimal Cortex-M startup for edgekd's test firmware: vector table, FPU on, .data copied and .bss zeroed,
 * C/C++ constructors, main, exit. EDGEKD_SEMIHOSTING: newlib's rdimon (stdio and exit through QEMU
 * semihosting); otherwise newlib-nano with no system calls (the size build). */
#include <stdint.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_top;
extern int main(void);
extern void __libc_init_array(void);
extern void exit(int status) __attribute__((noreturn));
#ifdef EDGEKD_SEMIHOSTING
extern void initialise_monitor_handles(void);
#endif

volatile uint32_t g_edgekd_systick_wraps;

void _init(void) {}
void _fini(void) {}

void SysTick_Handler(void) { g_edgekd_systick_wraps++; }

void Fault_Handler(void)
{
#ifdef EDGEKD_SEMIHOSTING
    exit(70); /* QEMU exits with this code: the firmware faulted */
#else
    for (;;) {
    }
#endif
}

void Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10/CP11 full access (FPU, MVE) */
    __asm volatile("dsb\n\tisb");
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
#ifdef EDGEKD_SEMIHOSTING
    initialise_monitor_handles();
#endif
    __libc_init_array();
    exit(main());
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
