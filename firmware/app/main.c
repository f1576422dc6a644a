/* Device side of the host protocol (firmware/PROTOCOL.md): one request line in, zero or more
 * "D" data lines and exactly one "OK"/"ERR" line out.  Commands are idempotent, so the host can
 * retry any of them after a corrupted or lost line. */
#include <string.h>

#include "app.h"
#include "board.h"
#include "model.h"
#include "proto.h"
#ifdef TM_PIPELINE
#include "pipeline.h"
#endif

#define FW_VERSION "0.2.0"
#define BENCH_MAX_RUNS 10000u
/* LOAD's hex must fit a request line next to "LOAD <offset> " and "*XX". */
#define LOAD_MAX_BYTES ((PROTO_LINE_MAX - 24) / 2)

static int8_t input_buf[TM_INPUT_SIZE];
static int8_t output_buf[TM_OUTPUT_SIZE];
static uint32_t request_id; /* CRC-32 of the request being answered */

/* Starts the final line of a successful reply.  req= lets the host tell this reply from a late
 * one to an earlier request (after a timeout and retry) that used the same command word. */
void tx_ok(const char *command)
{
    tx_begin("OK ");
    tx_str(command);
    tx_key("req"), tx_hex32(request_id);
}

void reply_error(const char *code, const char *detail)
{
    tx_begin("ERR ");
    tx_str(code);
    tx_str(" ");
    tx_str(detail);
    tx_end();
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint32_t argmax(const int8_t *v, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Runs one timed inference into output_buf.  Returns tm_invoke's status. */
static int infer(const int8_t *in, uint64_t *ticks)
{
    board_ticks_reset();
    int status = tm_invoke(in, output_buf);
    *ticks = board_ticks();
    return status;
}

static int reply_model_error(int status)
{
    tx_begin("ERR MODEL tm_invoke returned ");
    tx_i32(status);
    tx_end();
    return 0;
}

/* Resolves the optional input-address argument: preloaded memory, or the LOAD buffer. */
static const int8_t *input_at(int argc, char **argv, int index)
{
    uint32_t addr;
    if (argc <= index)
        return input_buf;
    if (proto_parse_u32(argv[index], &addr) != 0)
        return NULL;
    return board_preload(addr, TM_INPUT_SIZE);
}

static int cmd_id(int argc, char **argv)
{
    (void)argc, (void)argv;
    tx_ok("ID");
    tx_key("proto"), tx_u32(PROTO_VERSION);
    tx_key("fw"), tx_str(FW_VERSION);
    tx_key("board"), tx_str(board_name());
    tx_key("model"), tx_str(TM_MODEL_HASH);
    tx_key("in"), tx_u32(TM_INPUT_SIZE);
    tx_key("out"), tx_u32(TM_OUTPUT_SIZE);
    tx_key("arena"), tx_u32(TM_ARENA_SIZE);
    tx_key("weights"), tx_u32(TM_WEIGHT_BYTES);
    /* Scales as IEEE-754 bit patterns: exact, and no printf-float in the image. */
    tx_key("in_scale"), tx_hex32(float_bits(TM_INPUT_SCALE));
    tx_key("in_zp"), tx_i32(TM_INPUT_ZERO_POINT);
    tx_key("out_scale"), tx_hex32(float_bits(TM_OUTPUT_SCALE));
    tx_key("out_zp"), tx_i32(TM_OUTPUT_ZERO_POINT);
    tx_key("tick"), tx_str(board_tick_source());
    tx_key("tick_hz"), tx_u32(board_tick_hz());
    tx_key("line_max"), tx_u32(PROTO_LINE_MAX);
    tx_end();
    return 0;
}

static int cmd_mem(int argc, char **argv)
{
    (void)argc, (void)argv;
    tx_ok("MEM");
    tx_key("data"), tx_u32(board_data_bytes());
    tx_key("bss"), tx_u32(board_bss_bytes());
    tx_key("arena"), tx_u32(TM_ARENA_SIZE);
    tx_key("stack_size"), tx_u32(board_stack_size());
    tx_key("stack_used"), tx_u32(board_stack_high_water());
    tx_end();
    return 0;
}

static int cmd_load(int argc, char **argv)
{
    uint32_t offset;
    if (argc != 3 || proto_parse_u32(argv[1], &offset) != 0)
        return -1;
    size_t n = strlen(argv[2]) / 2;
    if (n == 0 || n > LOAD_MAX_BYTES || offset > TM_INPUT_SIZE || n > TM_INPUT_SIZE - offset) {
        reply_error("RANGE", "LOAD past the end of the input");
        return 0;
    }
    if (proto_parse_hex(argv[2], (uint8_t *)input_buf + offset, n) != 0)
        return -1;
    tx_ok("LOAD");
    tx_key("offset"), tx_u32(offset);
    tx_key("n"), tx_u32((uint32_t)n);
    tx_end();
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const int8_t *in = input_at(argc, argv, 1);
    uint64_t ticks;
    if (argc > 2)
        return -1;
    if (!in) {
        reply_error("RANGE", "input address is not preloadable memory");
        return 0;
    }
    int status = infer(in, &ticks);
    if (status != 0)
        return reply_model_error(status);
    tx_ok("RUN");
    tx_key("class"), tx_u32(argmax(output_buf, TM_OUTPUT_SIZE));
    tx_key("ticks"), tx_u64(ticks);
    tx_key("out"), tx_hex_bytes(output_buf, TM_OUTPUT_SIZE);
    tx_end();
    return 0;
}

static int cmd_bench(int argc, char **argv)
{
    uint32_t runs;
    if (argc < 2 || argc > 3 || proto_parse_u32(argv[1], &runs) != 0)
        return -1;
    const int8_t *in = input_at(argc, argv, 2);
    if (!in || runs == 0 || runs > BENCH_MAX_RUNS) {
        reply_error("RANGE", "need 1..10000 runs and a preloadable input address");
        return 0;
    }
    for (uint32_t i = 0; i < runs; i++) {
        uint64_t ticks;
        int status = infer(in, &ticks);
        if (status != 0)
            return reply_model_error(status);
        tx_begin("D BENCH ");
        tx_u32(i);
        tx_str(" ");
        tx_u64(ticks);
        tx_end();
    }
    tx_ok("BENCH");
    tx_key("n"), tx_u32(runs);
    tx_end();
    return 0;
}

static int cmd_batch(int argc, char **argv)
{
    uint32_t addr, count, stride = TM_INPUT_SIZE;
    if (argc < 3 || argc > 4 || proto_parse_u32(argv[1], &addr) != 0 ||
        proto_parse_u32(argv[2], &count) != 0 || (argc == 4 && proto_parse_u32(argv[3], &stride) != 0))
        return -1;
    /* Validate the whole span up front so a bad request produces no partial output. */
    uint64_t span = count ? (uint64_t)(count - 1) * stride + TM_INPUT_SIZE : 0;
    if (count == 0 || stride < TM_INPUT_SIZE || span > 0xFFFFFFFFu || !board_preload(addr, (uint32_t)span)) {
        reply_error("RANGE", "BATCH span is not preloadable memory");
        return 0;
    }
    uint32_t crc = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t ticks;
        int status = infer((const int8_t *)board_preload(addr + i * stride, TM_INPUT_SIZE), &ticks);
        if (status != 0)
            return reply_model_error(status);
        crc = crc32_update(crc, output_buf, TM_OUTPUT_SIZE);
        tx_begin("D OUT ");
        tx_u32(i);
        tx_str(" ");
        tx_u32(argmax(output_buf, TM_OUTPUT_SIZE));
        tx_str(" ");
        tx_hex_bytes(output_buf, TM_OUTPUT_SIZE);
        tx_end();
    }
    tx_ok("BATCH");
    tx_key("n"), tx_u32(count);
    tx_key("crc32"), tx_hex32(crc);
    tx_end();
    return 0;
}

static int cmd_cal(int argc, char **argv)
{
    uint32_t n;
    if (argc != 2 || proto_parse_u32(argv[1], &n) != 0 || n > 0x7FFFFFFFu)
        return -1;
    board_ticks_reset();
    board_calibration_loop(n);
    uint64_t ticks = board_ticks();
    tx_ok("CAL");
    tx_key("n"), tx_u32(n);
    tx_key("loop_insns"), tx_u64(2ull * n);
    tx_key("ticks"), tx_u64(ticks);
    tx_end();
    return 0;
}

static int cmd_exit(int argc, char **argv)
{
    uint32_t code = 0;
    if (argc > 2 || (argc == 2 && proto_parse_u32(argv[1], &code) != 0) || code > 255)
        return -1;
    tx_ok("EXIT");
    tx_key("code"), tx_u32(code);
    tx_end();
    board_exit((int)code);
}

struct command {
    const char *name;
    int (*handler)(int argc, char **argv); /* -1: malformed arguments */
    const char *usage;
};

static const struct command COMMANDS[] = {
    {"ID", cmd_id, "ID"},
    {"MEM", cmd_mem, "MEM"},
    {"LOAD", cmd_load, "LOAD <offset> <hex>"},
    {"RUN", cmd_run, "RUN [<addr>]"},
    {"BENCH", cmd_bench, "BENCH <runs> [<addr>]"},
    {"BATCH", cmd_batch, "BATCH <addr> <count> [<stride>]"},
    {"CAL", cmd_cal, "CAL <n>"},
    {"EXIT", cmd_exit, "EXIT [<code>]"},
#ifdef TM_PIPELINE /* protocol version 2: the keyword spotter (pipeline/) */
    {"PIPE", pl_cmd_pipe, "PIPE"},
    {"STREAM", pl_cmd_stream,
     "STREAM <addr> <samples> <rate> <interval> <window> <threshold> <suppression> <keywords>"},
    {"CLIPS", pl_cmd_clips, "CLIPS <addr> <count> <samples> <rate>"},
#endif
};

static void dispatch(char *line, size_t len)
{
    char *argv[PROTO_MAX_ARGS];
    if (proto_check(line, &len) != 0) {
        reply_error("CHECKSUM", "bad or missing *XX suffix");
        return;
    }
    request_id = crc32_update(0, line, len);
    int argc = proto_split(line, argv, PROTO_MAX_ARGS);
    if (argc == 0) {
        reply_error("ARGS", "empty request");
        return;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[0], COMMANDS[i].name) == 0) {
            if (COMMANDS[i].handler(argc, argv) != 0)
                reply_error("ARGS", COMMANDS[i].usage);
            return;
        }
    }
    tx_begin("ERR UNKNOWN commands:");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        tx_str(" "), tx_str(COMMANDS[i].name);
    tx_end();
}

int app_main(void)
{
    static char line[PROTO_LINE_MAX];

    board_init();
    memset(input_buf, (int8_t)TM_INPUT_ZERO_POINT, sizeof input_buf);

    tx_begin("READY");
    tx_key("proto"), tx_u32(PROTO_VERSION);
    tx_key("board"), tx_str(board_name());
    tx_end();

    for (;;) {
        int n = proto_read_line(line, sizeof line);
        if (n == PROTO_EOF)
            return 0;
        if (n == PROTO_TOOLONG)
            reply_error("TOOLONG", "request longer than line_max");
        else if (n > 0) /* blank lines let a host resynchronise without a reply */
            dispatch(line, (size_t)n);
    }
}
