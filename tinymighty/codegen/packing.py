"""Weights packed for the Cortex-M4 kernels: int16 pairs that SMLAD/SMLABB/SMLATT take as they are.

The SIMD multiplies of the Cortex-M4 work on two int16 lanes of a register. Activations are int8, four to
a word; SXTB16 sign-extends bytes 0 and 2 of a word into one register and, rotated, bytes 1 and 3 into
another. The kernels do that once per activation word; the weights are stored here already split the
same way, so the inner loops only load and multiply (see firmware/kernels/tm_nn_packed.c and
tm_depthwise_conv.c for the layouts).

Two arithmetic shortcuts are taken only where this module proves them exact for every possible input:

* Doubled weights and biases (``dbl``): the accumulator comes out as 2 * acc. Exact when
  2 * (|bias| + 128 * sum|w|), the largest accumulator any int8 input can produce, fits in int32.
* The fast requantisation (``rnd``): with 2 * acc, TFLM's SaturatingRoundingDoublingHighMul is one
  SMMULR (round(2 * acc * mult / 2^32)); its RoundingDivideByPOT by e = -shift >= 1, plus the output
  zero point, is (t + (t >> 31) + rnd) >> e with rnd = 2^(e-1) + (out_zp << e); SSAT to int8 and the
  activation clamp finish it. Needs every channel's shift in [-22, -1] (no left shift, and no overflow of
  t + rnd); otherwise rnd is NULL and the kernels use the general MultiplyByQuantizedMultiplier.

4-bit weights (TFLite INT4, two a byte, low nibble first) stay packed: a dense convolution keeps TFLite's bytes
and unpacks them into the layout above once per call (tm_unpack_w4), a 3x3 depthwise one into packed_dw3x3's
stream (tm_dwconv3x3_s4); a FULLY_CONNECTED layer's are re-ordered
within each group of 8 columns (``fc_int4``) so its kernel splits them into SMLAD pairs with two masks.
"""

from __future__ import annotations

import numpy as np

INT32_LIMIT = 2**31
FAST_SHIFTS = (-22, -1)  # shift range of the fast requantisation


def pair_words(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """int16 pairs as int32 words: lo in the low half, hi in the high half."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    if np.any(np.abs(lo) >= 2**15) or np.any(np.abs(hi) >= 2**15):
        raise ValueError("pair element out of int16 range")
    return ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).astype(np.uint32).view(np.int32)


def acc_bound(folded: np.ndarray, w2d: np.ndarray) -> np.ndarray:
    """Per output channel, the largest |accumulator| an int8 input can give (bias with the input zero
    point folded in, plus 128 times the weights' absolute sum)."""
    return np.abs(folded.astype(np.int64)) + 128 * np.abs(w2d.astype(np.int64)).sum(axis=1)


def doubling(bound: np.ndarray) -> int:
    """1 when every channel's doubled accumulator fits in int32, else 0."""
    return int(bool(np.all(2 * bound < INT32_LIMIT)))


def fast_rounding(shifts, out_zp: int, bound: np.ndarray, dbl: int) -> np.ndarray | None:
    """rnd[c] = 2^(e-1) + (out_zp << e) for e = -shift[c], or None when the fast requantisation is not exact."""
    shifts = np.asarray(shifts, np.int64)
    if not dbl or not np.all((shifts >= FAST_SHIFTS[0]) & (shifts <= FAST_SHIFTS[1])):
        return None
    e = -shifts
    rnd = (1 << (e - 1)) + (np.int64(out_zp) << e)
    # t = SRDHM(acc, mult) has |t| <= |acc| + 1: t + (t >> 31) + rnd must not overflow either way.
    if np.any(bound + 2 + np.abs(rnd) >= INT32_LIMIT):
        return None
    return rnd.astype(np.int32)


def pair_order(k8: int) -> tuple[np.ndarray, np.ndarray]:
    """The k positions of each k-pair j of a k8-long row: j = 2q + h pairs (4q + h, 4q + h + 2)."""
    j = np.arange(k8 // 2)
    q, h = np.divmod(j, 2)
    return 4 * q + h, 4 * q + h + 2


def packed_matmul(w2d: np.ndarray, folded: np.ndarray, dbl: int) -> tuple[np.ndarray, int]:
    """The tm_pmm_t weight stream of a [cout][k] int8 matrix and its folded biases: per channel pair
    (c, c + 1), the two biases, then per k-pair j the int16-pair words of c and of c + 1. k is padded
    with zero weights to k8, a multiple of 8, cout with an all-zero channel to an even count.
    Returns (int32 stream, kp = k8 / 2)."""
    cout, k = w2d.shape
    k8 = -(-k // 8) * 8
    scale = 2 if dbl else 1
    w = np.zeros((cout + cout % 2, k8), np.int64)
    w[:cout, :k] = w2d.astype(np.int64) * scale
    b = np.zeros(cout + cout % 2, np.int64)
    b[:cout] = folded.astype(np.int64) * scale
    lo, hi = pair_order(k8)
    words = pair_words(w[:, lo], w[:, hi])  # [channel][j]
    pairs = len(b) // 2
    body = words.reshape(pairs, 2, k8 // 2).transpose(0, 2, 1).reshape(pairs, -1)  # per pair: j-major, c then c+1
    head = b.reshape(pairs, 2).astype(np.int32)
    return np.concatenate([head, body], axis=1).reshape(-1).astype(np.int32), k8 // 2


def packed_dw3x3(taps: np.ndarray, folded: np.ndarray, dbl: int) -> np.ndarray:
    """The tm_dw3x3_t weight stream of [channel][9 taps] int8 weights (channels a multiple of 4): per
    four channels c..c+3, their four biases, then per tap the words (c, c + 2) and (c + 1, c + 3)."""
    cout = taps.shape[0]
    scale = 2 if dbl else 1
    w = taps.astype(np.int64).reshape(cout // 4, 4, 9) * scale
    head = (folded.astype(np.int64) * scale).reshape(cout // 4, 4).astype(np.int32)
    ev = pair_words(w[:, 0, :], w[:, 2, :])  # [quad][tap]
    od = pair_words(w[:, 1, :], w[:, 3, :])
    body = np.stack([ev, od], axis=2).reshape(cout // 4, 18)
    return np.concatenate([head, body], axis=1).reshape(-1).astype(np.int32)


def int4_values(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """TFLite's packed INT4 bytes (two a byte, low nibble first) as int8 values of the tensor's shape."""
    raw = np.asarray(raw, np.uint8).reshape(-1)
    nibbles = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1).astype(np.int8)
    values = np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.int8)
    return values[: int(np.prod(shape))].reshape(shape)


FC_NIBBLE_COLUMNS = np.array([0, 4, 1, 5, 2, 6, 3, 7])  # nibble i of a group's word holds column 8g + this


def fc_int4(w2d: np.ndarray) -> np.ndarray:
    """A [cout][k] matrix of 4-bit values (k a multiple of 8) in tm_matmul_t's 4-bit layout: per row, per group
    of 8 columns, a little-endian word whose nibble i is column 8g + FC_NIBBLE_COLUMNS[i]."""
    cout, k = w2d.shape
    groups = w2d.astype(np.int64).reshape(cout, k // 8, 8)[:, :, FC_NIBBLE_COLUMNS] & 0xF
    words = (groups << (4 * np.arange(8))).sum(axis=2).astype(np.uint32)  # [cout][k / 8]
    return words.astype("<u4").view(np.uint8).reshape(cout, k // 2).view(np.int8)
