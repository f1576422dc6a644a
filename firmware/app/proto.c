#include "proto.h"

#include "board.h"

uint8_t crc8_update(uint8_t crc, uint8_t byte)
{
    /* CRC-8/SMBUS (poly 0x07, init 0): bitwise, as 256 table bytes cost more flash than time. */
    crc ^= byte;
    for (int i = 0; i < 8; i++)
        crc = (uint8_t)((crc & 0x80u) ? ((unsigned)crc << 1) ^ 0x07u : (unsigned)crc << 1);
    return crc;
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
    /* Standard CRC-32 (zlib's), so the host can check it with zlib.crc32. */
    const uint8_t *p = data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int i = 0; i < 8; i++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

int proto_read_line(char *buf, size_t cap)
{
    size_t len = 0;
    int overflow = 0;
    for (;;) {
        int c = board_getc();
        if (c == BOARD_EOF)
            return PROTO_EOF;
        if (c == '\n')
            break;
        if (c == '\r')
            continue;
        if (len + 1 < cap)
            buf[len++] = (char)c;
        else
            overflow = 1;
    }
    buf[len] = '\0';
    return overflow ? PROTO_TOOLONG : (int)len;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int proto_check(char *line, size_t *len)
{
    size_t n = *len;
    if (n < 3 || line[n - 3] != '*')
        return -1;
    int hi = hex_nibble(line[n - 2]), lo = hex_nibble(line[n - 1]);
    if (hi < 0 || lo < 0)
        return -1;
    uint8_t crc = 0;
    for (size_t i = 0; i < n - 3; i++)
        crc = crc8_update(crc, (uint8_t)line[i]);
    if (crc != (uint8_t)(hi << 4 | lo))
        return -1;
    line[n - 3] = '\0';
    *len = n - 3;
    return 0;
}

int proto_split(char *line, char **argv, int max)
{
    int argc = 0;
    char *p = line;
    while (*p && argc < max) {
        while (*p == ' ')
            *p++ = '\0';
        if (!*p)
            break;
        argv[argc++] = p;
        while (*p && *p != ' ')
            p++;
    }
    return argc;
}

int proto_parse_u32(const char *s, uint32_t *out)
{
    uint32_t base = 10, v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return -1;
    for (; *s; s++) {
        int d = hex_nibble(*s);
        if (d < 0 || (uint32_t)d >= base || v > (0xFFFFFFFFu - (uint32_t)d) / base)
            return -1;
        v = v * base + (uint32_t)d;
    }
    *out = v;
    return 0;
}

int proto_parse_hex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(s[2 * i]);
        int lo = hi < 0 ? -1 : hex_nibble(s[2 * i + 1]);
        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[2 * n] == '\0' ? 0 : -1;
}

static uint8_t tx_crc;
static const char HEX[] = "0123456789ABCDEF";

static void tx_char(char c)
{
    tx_crc = crc8_update(tx_crc, (uint8_t)c);
    board_putc(c);
}

void tx_str(const char *s)
{
    while (*s)
        tx_char(*s++);
}

void tx_begin(const char *first_word)
{
    tx_crc = 0;
    tx_str(first_word);
}

void tx_u64(uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n)
        tx_char(digits[--n]);
}

void tx_u32(uint32_t v) { tx_u64(v); }

void tx_i32(int32_t v)
{
    if (v < 0) {
        tx_char('-');
        tx_u64((uint64_t)(-(int64_t)v));
    } else {
        tx_u64((uint64_t)v);
    }
}

void tx_hex32(uint32_t v)
{
    for (int shift = 28; shift >= 0; shift -= 4)
        tx_char(HEX[(v >> shift) & 0xFu]);
}

void tx_hex_bytes(const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        tx_char(HEX[p[i] >> 4]);
        tx_char(HEX[p[i] & 0xFu]);
    }
}

void tx_key(const char *key)
{
    tx_char(' ');
    tx_str(key);
    tx_char('=');
}

void tx_end(void)
{
    uint8_t crc = tx_crc;
    board_putc('*');
    board_putc(HEX[crc >> 4]);
    board_putc(HEX[crc & 0xFu]);
    board_putc('\n');
    board_flush();
}
