/* The stack protector's guard and failure handler for -fstack-protector-strong, instead of
 * gcc's libssp: libssp seeds its guard from a constructor that calls CryptAcquireContext,
 * i.e. loads a CSP DLL from inside DllMain under the loader lock - inside LSASS, at boot.
 * Here the guard is seeded in DllMain the way MSVC's __security_init_cookie seeds /GS
 * (time, counters, ids, addresses: no DLL, no lock), and a smashed stack ends the process
 * with __fastfail(FAST_FAIL_STACK_COOKIE_CHECK_FAILURE), as /GS does: once the stack is
 * corrupt, continuing would be worse than the reboot. */
#include "internal.h"

uintptr_t __stack_chk_guard = (uintptr_t)0x2B992DDFA23249D6ull; /* replaced in DllMain */

__attribute__((noreturn)) void __stack_chk_fail(void)
{
    __asm__ volatile("int $0x29" : : "c"(FAST_FAIL_STACK_COOKIE_CHECK_FAILURE) : "memory");
    TerminateProcess(GetCurrentProcess(), (UINT)STATUS_STACK_BUFFER_OVERRUN);
    __builtin_unreachable();
}

static uint64_t mix(uint64_t z) /* splitmix64's finaliser */
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Called first thing in DLL_PROCESS_ATTACH; no function with a canary is active then. */
__attribute__((no_stack_protector)) void adsy_ssp_init(void)
{
    LARGE_INTEGER qpc;
    FILETIME ft;
    uint64_t v = (uint64_t)(uintptr_t)&qpc ^ (uint64_t)(uintptr_t)&__stack_chk_guard;
    QueryPerformanceCounter(&qpc);
    GetSystemTimeAsFileTime(&ft);
    v = mix(v ^ (uint64_t)qpc.QuadPart);
    v = mix(v ^ ((uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime));
    v = mix(v ^ ((uint64_t)GetCurrentProcessId() << 32 | GetCurrentThreadId()));
    v = mix(v ^ GetTickCount64());
    v &= ~(uint64_t)0xFF; /* a zero low byte: string functions cannot copy past it */
    __stack_chk_guard = (uintptr_t)(v ? v : 0x2B992DDFA2324900ull);
}
