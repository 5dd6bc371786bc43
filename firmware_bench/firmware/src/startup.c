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
    /* Straight to QEMU (SYS_EXIT_EXTENDED, exit code 70): no atexit handlers or stdio from a fault. */
    static const uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, 70u};
    register uint32_t op __asm("r0") = 0x20u;
    register const uint32_t *arg __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : : "r"(op), "r"(arg) : "memory");
#endif
    for (;;) {
    }
}

/* Stack high-water mark: the free RAM between the heap and the stack is filled with a pattern at reset;
 * edgekd_stack_used() reports how far down from the top the stack has written since. */
#define EDGEKD_STACK_PAINT 0xC5AC5AC5u
extern char end;

static uint32_t *paint_floor(void)
{
    extern void *_sbrk(int);
    char *heap_top = (char *)_sbrk(0);
    return (uint32_t *)(((uintptr_t)(heap_top > &end ? heap_top : &end) + 63u) & ~(uintptr_t)63u);
}

static void paint_stack(void)
{
    uint32_t *p = (uint32_t *)(((uintptr_t)&end + 63u) & ~(uintptr_t)63u);
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    while (p < sp - 64) { /* leave the running frame alone */
        *p++ = EDGEKD_STACK_PAINT;
    }
}

uint32_t edgekd_stack_used(void)
{
    uint32_t *p = paint_floor();
    while (p < &__stack_top && *p == EDGEKD_STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((char *)&__stack_top - (char *)p);
}

void Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10/CP11 full access (FPU, MVE) */
    __asm volatile("dsb\n\tisb");
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    paint_stack();
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
