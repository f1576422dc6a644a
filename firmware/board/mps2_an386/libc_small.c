/* Size-optimised stand-ins for library code the protocol app pulls in, linked instead of the
 * library's because they are defined here.
 *
 * newlib's strcmp and strlen for Armv7E-M are unrolled and 32-byte aligned (about 950 bytes of
 * flash together); the protocol compares a handful of short command words per request, so plain
 * loops do.  libgcc's 64-bit division (__aeabi_uldivmod, about 750 bytes) only prints tick counts
 * here, so shift-and-subtract does.  newlib's memcpy and memset (about 470 bytes) are unrolled for
 * speed; here they copy the .data image at reset and the app's buffers, neither timed, and the
 * kernels move their few bytes inline.  None of this runs while an inference is timed. */
#include <stddef.h>
#include <stdint.h>

int strcmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x != 0 && *x == *y) {
        x++;
        y++;
    }
    return (int)*x - (int)*y;
}

size_t strlen(const char *s)
{
    const char *p = s;
    while (*p != 0) {
        p++;
    }
    return (size_t)(p - s);
}

/* n / d, and n % d in *rem (d == 0 gives all ones and n, as no trap is wanted here). */
uint64_t tm_udivmod64(uint64_t n, uint64_t d, uint64_t *rem);
uint64_t tm_udivmod64(uint64_t n, uint64_t d, uint64_t *rem)
{
    uint64_t q = 0, r = 0;
    int i;
    for (i = 63; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= (uint64_t)1 << i;
        }
    }
    *rem = r;
    return q;
}

/* The run-time ABI's unsigned 64-bit division: n in r0:r1, d in r2:r3; quotient in r0:r1,
 * remainder in r2:r3, which C cannot return, hence the assembly around tm_udivmod64. */
__attribute__((naked)) void __aeabi_uldivmod(void)
{
    __asm__ volatile("push {r4, lr}\n\t"
                     "sub sp, sp, #16\n\t"
                     "add r4, sp, #8\n\t"
                     "str r4, [sp]\n\t"
                     "bl tm_udivmod64\n\t"
                     "ldrd r2, r3, [sp, #8]\n\t"
                     "add sp, sp, #16\n\t"
                     "pop {r4, pc}\n");
}

/* Words where source and destination allow, bytes otherwise; the loops must stay loops. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) {
            *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
        }
    }
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}
