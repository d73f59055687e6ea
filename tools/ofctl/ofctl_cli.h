/*
 * ofctl_cli.h - the command dispatcher and what every command shares:
 * the context (output mode, configuration loaded on demand), error and
 * JSON-line output, argument-parsing helpers.
 *
 * Exit codes everywhere: OFCTL_EXIT_OK (0) success, OFCTL_EXIT_FAIL (1)
 * failure (including a violation found by `verify`), OFCTL_EXIT_USAGE (2)
 * bad usage or bad configuration.
 */
#ifndef OFCTL_CLI_H
#define OFCTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "of_status.h"
#include "ofctl_args.h"
#include "ofctl_cfg.h"
#include "ofctl_opts.h"

struct ofctl_ctx {
    bool json;        /* --json: JSON lines on stdout */
    bool cfg_loaded;
    ofctl_config cfg;
    FILE *out;        /* stdout */
    FILE *err;        /* stderr */
};

/* Runs ofctl with the process's arguments. Returns the exit code. */
int ofctl_main(int argc, char **argv);

/* Loads the configuration once. Returns OFCTL_EXIT_OK, or prints the
 * problem (naming the variable) and returns OFCTL_EXIT_USAGE. */
int ofctl_ctx_config(ofctl_ctx *ctx);

/* Prints "ofctl: <message>" on stderr. */
void ofctl_errorf(ofctl_ctx *ctx, const char *fmt, ...) OF_PRINTF(2, 3);

/* Prints a usage error plus a pointer to --help for `cmd` on stderr
 * ("ofctl --help" when cmd is NULL or ""); returns OFCTL_EXIT_USAGE. */
int ofctl_usage_error(ofctl_ctx *ctx, const char *cmd, const char *fmt, ...)
    OF_PRINTF(3, 4);

/* Prints `obj` as one compact JSON line on stdout and deletes it
 * (ownership taken; NULL is ignored). */
void ofctl_json_line(ofctl_ctx *ctx, cJSON *obj);

/* The exit code for an operation's status: OK -> 0, else 1. */
int ofctl_exit_for(of_status st);

/* {"summary": {"topic": topic, ...}}: the last JSON line of a command
 * that reports per item. Returns the whole object (for ofctl_json_line)
 * and sets *summary to the inner one, where the caller adds its figures.
 * topic NULL: no "topic" member. NULL on allocation failure. */
cJSON *ofctl_json_summary(const char *topic, cJSON **summary);

/* Adds name: the RFC 3339 time of ms, or null when ms < 0. */
void ofctl_json_time(cJSON *o, const char *name, int64_t ms);

/* Adds name: the bytes p[0..len) as a string when they are valid UTF-8
 * without NUL, else their hex as "<name>_hex"; null when p is NULL. */
void ofctl_json_bytes(cJSON *o, const char *name, const void *p, size_t len);

/* The commands (argv[0] is the command word). */
int ofctl_cmd_topics(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_cmd_dlq(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_cmd_stock(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_cmd_pay(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_cmd_verify(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_cmd_status(ofctl_ctx *ctx, int argc, char **argv);

#endif
