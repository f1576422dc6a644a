/*
 * Kernel test harness for generated models, built on the host by
 * tinymighty.codegen.build_host (not the firmware's host board, board/host,
 * which runs the device protocol): reads raw int8 inputs of TM_INPUT_SIZE
 * bytes from stdin until EOF and writes TM_OUTPUT_SIZE raw int8 outputs per
 * input to stdout, so thousands of inputs cost one process start.
 * `tm_host --info` prints the model's compile-time facts instead.
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

int main(int argc, char **argv)
{
    static int8_t in[TM_INPUT_SIZE];
    static int8_t out[TM_OUTPUT_SIZE];
    size_t n;

    if (argc > 1 && strcmp(argv[1], "--info") == 0) {
        printf("hash %s\ninput %d\noutput %d\narena %d\nweights %d\n", TM_MODEL_HASH, TM_INPUT_SIZE,
               TM_OUTPUT_SIZE, TM_ARENA_SIZE, TM_WEIGHT_BYTES);
        return 0;
    }
    while ((n = fread(in, 1, sizeof in, stdin)) == sizeof in) {
        if (tm_invoke(in, out) != 0) {
            fprintf(stderr, "tm_invoke failed\n");
            return 3;
        }
        if (fwrite(out, 1, sizeof out, stdout) != sizeof out) {
            perror("write");
            return 4;
        }
    }
    if (n != 0 || ferror(stdin)) {
        fprintf(stderr, "input ended inside a sample (%zu stray bytes)\n", n);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 4;
}
