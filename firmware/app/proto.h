/* Line framing for the host protocol (see firmware/PROTOCOL.md): CRC-8 checked ASCII lines. */
#ifndef TM_PROTO_H
#define TM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 2
#define PROTO_LINE_MAX 256 /* longest request line, including "*XX" */
#define PROTO_MAX_ARGS 12

uint8_t crc8_update(uint8_t crc, uint8_t byte);
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

/* Reads one request line into buf (without the newline, NUL-terminated).  Returns its length,
 * PROTO_EOF when the channel closed, or PROTO_TOOLONG if it did not fit (the rest of that
 * line has then been consumed, so the next call starts on a fresh line). */
#define PROTO_EOF (-1)
#define PROTO_TOOLONG (-2)
int proto_read_line(char *buf, size_t cap);

/* Checks and strips the "*XX" suffix.  Returns 0 if the checksum matches. */
int proto_check(char *line, size_t *len);

/* Splits a checked line in place on spaces; returns the number of tokens (at most max). */
int proto_split(char *line, char **argv, int max);

/* Parses decimal or 0x-prefixed hex into *out; returns 0 on success. */
int proto_parse_u32(const char *s, uint32_t *out);

/* Decodes exactly n bytes of hex; returns 0 on success. */
int proto_parse_hex(const char *s, uint8_t *out, size_t n);

/* Response lines are streamed: the CRC is computed on the fly, so no line buffer is needed. */
void tx_begin(const char *first_word);
void tx_str(const char *s);
void tx_u32(uint32_t v);
void tx_u64(uint64_t v);
void tx_i32(int32_t v);
void tx_hex32(uint32_t v);
void tx_hex_bytes(const void *data, size_t n);
void tx_key(const char *key); /* " key=" */
void tx_end(void);            /* "*XX\n" */

#endif
