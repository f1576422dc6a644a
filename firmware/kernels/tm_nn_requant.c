/* Out-of-line requantisation: the cold-path helper and the test hook of tm_kernels.h. */
#include "tm_internal.h"

int32_t tm_mul_by_quant_mult(int32_t x, int32_t mult, int32_t shift) { return tm_mbqm(x, mult, shift); }

TM_NOINLINE int8_t tm_nn_requant_cold(const tm_requant_t *rq, int32_t c, int32_t acc)
{
    return tm_requant(rq, c, acc);
}
