/* The stand-in Arduino core on the host: enough of it to run the sketch (kws.ino, board_arduino.cpp and
 * the firmware's C sources) as a process, for tests.  Linux only (ptys, /proc/self/exe).
 *
 * main() plays the core: it opens a pty, prints "pty <path>" on stdout, then calls setup() once and
 * loop() forever.  Serial is the pty's master side; the host opens the printed path as it would open
 * /dev/ttyACM0.  The stand-in holds the slave side open too, so the host may close and reopen the port.
 *
 * Environment:
 *   TM_STANDIN_SERIAL=stdio     Serial is stdin/stdout instead of a pty (no "pty" line); the process ends
 *                               when stdin closes.
 *   TM_STANDIN_RESET_AFTER=<n>[,<n>...]  after n newlines received, the "board" resets: the process
 *                               executes itself again on the same pty, so all state is lost and READY comes
 *                               again; then after the next n newlines, and so on down the list.
 *   TM_STANDIN_PCM=<file>       the PDM microphone "records" this raw 16-bit mono PCM: 256 samples arrive
 *                               before each loop(); when the file is done and loop() has had it all, the
 *                               process exits with status 0.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "Arduino.h"
#include "PDM.h"
#include "standin_regs.h"

void setup();
void loop();

StandinSerial Serial;
PDMClass PDM;

static int serial_in = -1, serial_out = -1, pty_slave = -1;
static long lines_until_reset = -1;

static void die(const char *what)
{
    fprintf(stderr, "standin: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the core registers (standin_regs.h) ---- */

enum { REG_DEMCR, REG_DWT_CTRL, REG_DWT_CYCCNT, REG_OTHER, REGS };
static volatile uint32_t regs[REGS];
static uint64_t cyccnt_at_ns;
static double cyccnt_fraction;

extern "C" volatile uint32_t *tm_standin_reg(uint32_t addr)
{
    switch (addr) {
        case 0xE000EDFCu:
            return &regs[REG_DEMCR];
        case 0xE0001000u:
            return &regs[REG_DWT_CTRL];
        case 0xE0001004u: {
            const uint64_t now = now_ns();
            if ((regs[REG_DEMCR] & (1u << 24)) && (regs[REG_DWT_CTRL] & 1u)) {
                cyccnt_fraction += (double)(now - cyccnt_at_ns) * 0.064;
                const uint32_t whole = (uint32_t)cyccnt_fraction;
                cyccnt_fraction -= whole;
                regs[REG_DWT_CYCCNT] += whole;
            }
            cyccnt_at_ns = now;
            return &regs[REG_DWT_CYCCNT];
        }
        default:
            return &regs[REG_OTHER];
    }
}

/* ---- Serial ---- */

static void reset_board(void)
{
    char in[16], slave[16];
    snprintf(in, sizeof in, "%d", serial_in);
    snprintf(slave, sizeof slave, "%d", pty_slave);
    const char *rest = strchr(getenv("TM_STANDIN_RESET_AFTER"), ',');
    if (rest)
        setenv("TM_STANDIN_RESET_AFTER", rest + 1, 1);
    else
        unsetenv("TM_STANDIN_RESET_AFTER");
    execl("/proc/self/exe", "standin", "--pty-fd", in, "--slave-fd", slave, (char *)NULL);
    die("cannot re-execute itself");
}

void StandinSerial::begin(unsigned long baud) { (void)baud; }
StandinSerial::operator bool() { return true; }

int StandinSerial::available()
{
    int n = 0;
    return ioctl(serial_in, FIONREAD, &n) == 0 ? n : 0;
}

int StandinSerial::read()
{
    unsigned char c;
    if (available() <= 0 || ::read(serial_in, &c, 1) != 1)
        return -1;
    if (c == '\n' && lines_until_reset > 0 && --lines_until_reset == 0)
        reset_board();
    return c;
}

size_t StandinSerial::write(const uint8_t *buf, size_t n)
{
    for (size_t done = 0; done < n;) {
        const ssize_t k = ::write(serial_out, buf + done, n - done);
        if (k < 0 && errno != EINTR)
            die("Serial.write");
        done += k > 0 ? (size_t)k : 0;
    }
    return n;
}

size_t StandinSerial::write(uint8_t c) { return write(&c, 1); }
void StandinSerial::flush() {}
size_t StandinSerial::print(const char *s) { return write((const uint8_t *)s, strlen(s)); }

size_t StandinSerial::print(long v, int base)
{
    char buf[24];
    snprintf(buf, sizeof buf, base == 16 ? "%lX" : "%ld", v);
    return print(buf);
}

size_t StandinSerial::print(unsigned long v, int base)
{
    char buf[24];
    snprintf(buf, sizeof buf, base == 16 ? "%lX" : "%lu", v);
    return print(buf);
}

size_t StandinSerial::println() { return print("\r\n"); }
size_t StandinSerial::println(const char *s) { return print(s) + println(); }
size_t StandinSerial::println(long v, int base) { return print(v, base) + println(); }
size_t StandinSerial::println(unsigned long v, int base) { return print(v, base) + println(); }

unsigned long millis(void) { return (unsigned long)(now_ns() / 1000000u); }

void delay(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to a millisecond for input rather than spinning: the glue yields while it waits for a byte.  On
 * stdio, stdin closed and drained is the board unplugged: the process ends. */
void yield(void)
{
    struct pollfd p = {serial_in, POLLIN, 0};
    if (poll(&p, 1, 1) > 0 && (p.revents & POLLHUP) && serial_in == 0 && Serial.available() <= 0)
        exit(0);
}

/* ---- PDM ---- */

static FILE *pcm;
static void (*pdm_callback)(void);
static int16_t pdm_chunk[256];
static size_t pdm_bytes, pdm_taken;

int PDMClass::begin(int channels, int sampleRate)
{
    (void)sampleRate;
    const char *path = getenv("TM_STANDIN_PCM");
    pcm = channels == 1 && path ? fopen(path, "rb") : NULL;
    return pcm != NULL;
}

void PDMClass::end() {}
int PDMClass::available() { return (int)(pdm_bytes - pdm_taken); }

int PDMClass::read(void *buffer, size_t size)
{
    const size_t n = size < pdm_bytes - pdm_taken ? size : pdm_bytes - pdm_taken;
    memcpy(buffer, (const char *)pdm_chunk + pdm_taken, n);
    pdm_taken += n;
    return (int)n;
}

void PDMClass::onReceive(void (*callback)(void)) { pdm_callback = callback; }
void PDMClass::setGain(int gain) { (void)gain; }

/* Delivers the next chunk as the microphone's interrupt would; false once the recording is over. */
static bool pdm_deliver(void)
{
    pdm_bytes = fread(pdm_chunk, 1, sizeof pdm_chunk, pcm);
    pdm_taken = 0;
    if (pdm_bytes == 0)
        return false;
    if (pdm_callback)
        pdm_callback();
    return true;
}

/* ---- the core's main ---- */

static void open_pty(void)
{
    const int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        die("cannot open a pty");
    const char *path = ptsname(master);
    pty_slave = path ? open(path, O_RDWR | O_NOCTTY) : -1;
    struct termios t;
    if (pty_slave < 0 || tcgetattr(pty_slave, &t) != 0)
        die("cannot open the pty's slave side");
    cfmakeraw(&t); /* no echo, no line editing: bytes pass as they are, as over USB */
    if (tcsetattr(pty_slave, TCSANOW, &t) != 0)
        die("cannot make the pty raw");
    serial_in = serial_out = master;
    printf("pty %s\n", path);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--pty-fd") == 0 && strcmp(argv[3], "--slave-fd") == 0) {
        serial_in = serial_out = atoi(argv[2]); /* after a reset: the same pty */
        pty_slave = atoi(argv[4]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s   (options in the environment, see standin.cpp)\n", argv[0]);
        return 2;
    } else if (getenv("TM_STANDIN_SERIAL") && strcmp(getenv("TM_STANDIN_SERIAL"), "stdio") == 0) {
        serial_in = 0;
        serial_out = 1;
    } else {
        open_pty();
    }
    if (getenv("TM_STANDIN_RESET_AFTER"))
        lines_until_reset = atol(getenv("TM_STANDIN_RESET_AFTER"));
    setup();
    for (;;) {
        if (pcm && !pdm_deliver()) {
            loop(); /* the last chunk's strides */
            return 0;
        }
        loop();
    }
}
