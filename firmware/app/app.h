/* Reply helpers of the protocol app (main.c) for command handlers in other files (pipeline/). */
#ifndef TM_APP_H
#define TM_APP_H

/* Starts the final line of a successful reply ("OK <command> req=<id>"); finish it with tx_end. */
void tx_ok(const char *command);

/* One whole "ERR <code> <detail>" line. */
void reply_error(const char *code, const char *detail);

#endif
