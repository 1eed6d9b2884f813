/* A fault guard that works with mingw-w64 gcc, which has no __try/__except for C: a
 * vectored exception handler (AddVectoredExceptionHandler, called before any frame-based
 * handler) resumes a guarded thread at the context captured when it entered our export
 * (RtlCaptureContext), so the export returns a safe answer instead of LSASS dying.
 *
 * It acts only on (a) a hardware fault (access violation, in-page error, divide by zero,
 * illegal instruction ...), (b) raised at an address inside this DLL, (c) on a thread that
 * is inside a guarded call (a per-thread TLS slot points at its adsy_guard). Anything else
 * - exceptions LSASS or the system raise and handle themselves - goes on untouched.
 * Nothing is unwound: our exports hold no lock (the queue and the log are lock-free), so
 * resuming at entry leaves no lock taken; at worst a socket or buffer of the faulting
 * call is leaked. A stack overflow and __fastfail are not recoverable and not handled.
 * Microsoft: "Vectored Exception Handling", "RtlCaptureContext", "AddVectoredExceptionHandler". */
#include "internal.h"

static DWORD g_tls = TLS_OUT_OF_INDEXES;
static uintptr_t g_lo, g_hi;
volatile LONG64 g_faults;

static int is_fault(DWORD code)
{
    switch (code) {
    case EXCEPTION_ACCESS_VIOLATION:
    case EXCEPTION_IN_PAGE_ERROR:
    case EXCEPTION_ARRAY_BOUNDS_EXCEEDED:
    case EXCEPTION_DATATYPE_MISALIGNMENT:
    case EXCEPTION_INT_DIVIDE_BY_ZERO:
    case EXCEPTION_INT_OVERFLOW:
    case EXCEPTION_ILLEGAL_INSTRUCTION:
    case EXCEPTION_PRIV_INSTRUCTION:
    case EXCEPTION_FLT_DIVIDE_BY_ZERO:
    case EXCEPTION_FLT_INVALID_OPERATION:
        return 1;
    default:
        return 0;
    }
}

static LONG CALLBACK on_exception(EXCEPTION_POINTERS *ep)
{
    if (g_tls == TLS_OUT_OF_INDEXES || !is_fault(ep->ExceptionRecord->ExceptionCode))
        return EXCEPTION_CONTINUE_SEARCH;
    uintptr_t at = (uintptr_t)ep->ExceptionRecord->ExceptionAddress;
    if (at < g_lo || at >= g_hi)
        return EXCEPTION_CONTINUE_SEARCH;
    DWORD err = GetLastError(); /* TlsGetValue resets it */
    adsy_guard *g = TlsGetValue(g_tls);
    SetLastError(err);
    if (!g || g->faulted)
        return EXCEPTION_CONTINUE_SEARCH;
    g->faulted = 1;
    TlsSetValue(g_tls, g->prev);
    InterlockedIncrement64(&g_faults);
    *ep->ContextRecord = g->ctx; /* resume where the guarded call began */
    return EXCEPTION_CONTINUE_EXECUTION;
}

int adsy_guard_init(void)
{
    HMODULE self = NULL;
    if (g_tls != TLS_OUT_OF_INDEXES)
        return ADSY_OK;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCWSTR)(void *)on_exception, &self))
        return (int)GetLastError();
    const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)self;
    const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)((const BYTE *)self + dos->e_lfanew);
    g_lo = (uintptr_t)self;
    g_hi = g_lo + nt->OptionalHeader.SizeOfImage;
    DWORD tls = TlsAlloc();
    if (tls == TLS_OUT_OF_INDEXES)
        return (int)GetLastError();
    g_tls = tls;
    if (!AddVectoredExceptionHandler(0, on_exception))
        return ADSY_E_SPACE;
    return ADSY_OK;
}

void adsy_guard_arm(adsy_guard *g)
{
    if (g_tls == TLS_OUT_OF_INDEXES)
        return; /* not installed (yet): the call runs unguarded */
    g->prev = TlsGetValue(g_tls);
    TlsSetValue(g_tls, g);
    g->armed = 1;
}

void adsy_guard_leave(adsy_guard *g)
{
    if (g->armed && !g->faulted)
        TlsSetValue(g_tls, g->prev);
}
