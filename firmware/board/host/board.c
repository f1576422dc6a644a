/* Native build of the same app: the protocol on stdin/stdout, for tests and debugging without
 * an emulator.  Ticks are wall-clock nanoseconds (not deterministic) and the memory figures
 * the MCU reports are 0, since a hosted process has no comparable static layout.
 *
 * Usage: firmware_host [--preload FILE@ADDR]...   (ADDR as on the device, e.g. 0x21000000) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "board.h"

int app_main(void);

#define MAX_PRELOADS 4

static struct preload {
    uint32_t addr;
    uint32_t size;
    uint8_t *data;
} preloads[MAX_PRELOADS];
static int n_preloads;
static uint64_t tick_origin;

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "firmware_host: %s: %s\n", what, arg);
    exit(2);
}

static void add_preload(const char *spec)
{
    const char *at = strrchr(spec, '@');
    if (!at || n_preloads == MAX_PRELOADS)
        die("--preload wants FILE@ADDR (at most 4)", spec);
    char path[4096];
    snprintf(path, sizeof path, "%.*s", (int)(at - spec), spec);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open preload file", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    struct preload *p = &preloads[n_preloads++];
    p->addr = (uint32_t)strtoul(at + 1, NULL, 0);
    p->size = (uint32_t)size;
    p->data = malloc(size ? (size_t)size : 1);
    if (!p->data || fread(p->data, 1, (size_t)size, f) != (size_t)size)
        die("cannot read preload file", path);
    fclose(f);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc)
            add_preload(argv[++i]);
        else
            die("unknown argument (usage: firmware_host [--preload FILE@ADDR]...)", argv[i]);
    }
    return app_main();
}

void board_init(void) { board_ticks_reset(); }

int board_getc(void)
{
    int c = getchar();
    return c == EOF ? BOARD_EOF : c;
}

void board_putc(char c) { putchar(c); }
void board_flush(void) { fflush(stdout); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void board_ticks_reset(void) { tick_origin = now_ns(); }
uint64_t board_ticks(void) { return now_ns() - tick_origin; }
uint32_t board_tick_hz(void) { return 1000000000u; }
const char *board_tick_source(void) { return "host_ns"; }

uint32_t board_stack_size(void) { return 0; }
uint32_t board_stack_high_water(void) { return 0; }
uint32_t board_data_bytes(void) { return 0; }
uint32_t board_bss_bytes(void) { return 0; }

const void *board_preload(uint32_t addr, uint32_t len)
{
    for (int i = 0; i < n_preloads; i++) {
        const struct preload *p = &preloads[i];
        if (addr >= p->addr && len <= p->size && addr - p->addr <= p->size - len)
            return p->data + (addr - p->addr);
    }
    return NULL;
}

const char *board_name(void) { return "host"; }

void board_calibration_loop(uint32_t n)
{
    /* volatile keeps the loop; its instruction count is only meaningful on the MCU boards. */
    for (volatile uint32_t i = n; i; i--)
        ;
}

void board_exit(int code)
{
    fflush(stdout);
    exit(code);
}
