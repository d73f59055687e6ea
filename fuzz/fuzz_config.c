/*
 * fuzz_config.c - configuration parsing (of_config.c) and the services'
 * own configuration loaders (inventory, notify).
 *
 * Input: lines "NAME=VALUE". Each one is put in the environment (names
 * must start with OF_ or FZ_, everything else is ignored), then:
 *  - every VALUE goes through of_config_parse_duration (checked against a
 *    reference parser) and of_config_parse_durations;
 *  - of_config_load runs over a table with one entry of every type
 *    (FZ_STR, FZ_INT, FZ_PORT, FZ_BOOL, FZ_DUR, FZ_DUR_B, FZ_LIST, FZ_URL,
 *    FZ_LEVEL, FZ_SECRET, FZ_SECRET_INT, FZ_REQ, FZ_LIST_REQ);
 *  - inv_config_load and ntf_config_load run over the same environment;
 *  - OF_RDKAFKA_* variables are applied to a fresh rd_kafka_conf_t
 *    (except plugin.library.paths, which would dlopen() the value).
 * The environment is restored after every input.
 *
 * Properties: a successful load leaves every value within its type and
 * bounds; a failed one names the variable first and never echoes a secret
 * value; whatever the outcome, of_config_free leaves no leak (LeakSanitizer).
 *
 * FUZZ-SOURCES: services/inventory/inv_config.c services/notify/ntf_config.c services/notify/ntf_addr.c
 * FUZZ-MAX-LEN: 2048
 */
#include <ctype.h>
#include <limits.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>

#include "fuzz_util.h"
#include "inv_config.h"
#include "ntf_config.h"
#include "of_config.h"

extern char **environ;

static char *v_str, *v_url, *v_secret, *v_req;
static long long v_int, v_port, v_secret_int;
static bool v_bool;
static int64_t v_dur, v_dur_b;
static of_cfg_list v_list, v_list_req;
static int v_level;

static const of_cfg_entry table[] = {
    {"FZ_STR", OF_CFG_STR, &v_str, "dflt", 0, 0, 0, "a string"},
    {"FZ_INT", OF_CFG_INT, &v_int, NULL, 0, 0, 0, "unbounded integer"},
    {"FZ_PORT", OF_CFG_INT, &v_port, "8080", 1, 65535, 0, "port"},
    {"FZ_BOOL", OF_CFG_BOOL, &v_bool, "0", 0, 0, 0, "boolean"},
    {"FZ_DUR", OF_CFG_DURATION, &v_dur, "5s", 0, 0, 0, "unbounded duration"},
    {"FZ_DUR_B", OF_CFG_DURATION, &v_dur_b, NULL, 100, 60000, 0, "bounded"},
    {"FZ_LIST", OF_CFG_LIST, &v_list, "a,b", 0, 0, 0, "list"},
    {"FZ_URL", OF_CFG_URL, &v_url, NULL, 0, 0, 0, "url"},
    {"FZ_LEVEL", OF_CFG_LEVEL, &v_level, "info", 0, 0, 0, "level"},
    {"FZ_SECRET", OF_CFG_URL, &v_secret, NULL, 0, 0, OF_CFG_SECRET, "secret"},
    {"FZ_SECRET_INT", OF_CFG_INT, &v_secret_int, "5", 1, 10, OF_CFG_SECRET,
     "secret int"},
    {"FZ_REQ", OF_CFG_STR, &v_req, NULL, 0, 0, OF_CFG_REQUIRED, "required"},
    {"FZ_LIST_REQ", OF_CFG_LIST, &v_list_req, NULL, 0, 0, OF_CFG_REQUIRED,
     "required list"},
};
#define NTABLE (sizeof table / sizeof table[0])

/* Variables whose values must never show in an error message. */
static const char *const secret_vars[] = {"FZ_SECRET", "FZ_SECRET_INT",
                                          "OF_PG_DSN", "OF_NOTIFY_SECRET",
                                          "OF_ADMIN_TOKEN"};

#define MAX_SET 64
static char *set_names[MAX_SET];
static size_t nset;

static void env_clear_ours(void)
{
    for (size_t i = 0; i < nset; i++) {
        unsetenv(set_names[i]);
        free(set_names[i]);
    }
    nset = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Start from an environment without OF_ and FZ_ variables. */
    for (;;) {
        char name[512] = "";
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "OF_", 3) == 0 || strncmp(*e, "FZ_", 3) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n < sizeof name) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                }
                break;
            }
        }
        if (name[0] == '\0')
            break;
        unsetenv(name);
    }
    return 0;
}

/* Reference for of_config_parse_duration: trimmed digits then an optional
 * unit ms|s|m|h (any case), no overflow. */
static int ref_duration(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    size_t i = 0;
    __int128 v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i] - '0');
        if (v > INT64_MAX)
            return -1;
        i++;
    }
    if (i == 0)
        return -1;
    const char *u = s + i;
    size_t ul = n - i;
    int64_t mult;
    if (ul == 0 || (ul == 2 && strncasecmp(u, "ms", 2) == 0))
        mult = 1;
    else if (ul == 1 && (*u == 's' || *u == 'S'))
        mult = 1000;
    else if (ul == 1 && (*u == 'm' || *u == 'M'))
        mult = 60000;
    else if (ul == 1 && (*u == 'h' || *u == 'H'))
        mult = 3600000;
    else
        return -1;
    if (v * mult > INT64_MAX)
        return -1;
    *out = (int64_t)(v * mult);
    return 0;
}

static void check_durations(const char *v)
{
    int64_t ms = -7, want = -7;
    int rc = of_config_parse_duration(v, &ms);
    int ref = ref_duration(v, &want);
    /* The implementation rejects "more digits than INT64 holds" a bit
     * early ((INT64_MAX-9)/10 guard): that one difference is accepted. */
    /* Values of 64 bytes or more (after trimming) are rejected as a whole
     * (fixed finding "duration-truncation": they used to be cut to 63
     * bytes and the prefix parsed; regression input kept). */
    size_t tl = strlen(v);
    const char *tb = v;
    while (tl > 0 && isspace((unsigned char)*tb))
        tb++, tl--;
    while (tl > 0 && isspace((unsigned char)tb[tl - 1]))
        tl--;
    if (tl >= 64)
        FZ_CHECK(rc == -1, "'%s': %zu-byte value accepted", v, tl);
    else if (rc == -1 && ref == 0)
        FZ_CHECK(want >= INT64_MAX - 7, "'%s' rejected, ref %lld", v,
                 (long long)want);
    else
        FZ_CHECK(rc == ref && (rc != 0 || ms == want),
                 "'%s': rc %d ms %lld, reference rc %d ms %lld", v, rc,
                 (long long)ms, ref, (long long)want);

    int64_t arr[3];
    size_t n = 99;
    char err[256] = "";
    of_status st = of_config_parse_durations(v, arr, 3, &n, err, sizeof err);
    if (st == OF_OK) {
        FZ_CHECK(n <= 3, "%zu durations", n);
        for (size_t i = 0; i < n; i++)
            FZ_CHECK(arr[i] > 0, "duration %lld in '%s'", (long long)arr[i], v);
    } else {
        FZ_CHECK(st == OF_EFATAL && err[0] != '\0', "status %d err '%s'", st,
                 err);
    }
}

static bool list_ok(const of_cfg_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->items[i];
        size_t k = strlen(s);
        if (k == 0 || strchr(s, ',') || isspace((unsigned char)s[0]) ||
            isspace((unsigned char)s[k - 1]))
            return false;
    }
    return true;
}

static bool url_ok(const char *s)
{
    return s == NULL || *s == '\0' || strncasecmp(s, "http://", 7) == 0 ||
           strncasecmp(s, "https://", 8) == 0;
}

/* True when s has a byte that no fixed error text contains, so finding s
 * in a message means the value itself was copied there. */
static bool has_rare_char(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(" :/.,()'|-_", *s))
            return true;
    return false;
}

/* err must start with "<VAR>:" and must not show a secret's value. */
static void check_err(const char *err)
{
    const char *colon = strchr(err, ':');
    FZ_CHECK(colon != NULL && colon > err, "error '%s' names no variable",
             err);
    size_t nl = (size_t)(colon - err);
    for (size_t i = 0; i < sizeof secret_vars / sizeof secret_vars[0]; i++) {
        if (strlen(secret_vars[i]) != nl || strncmp(err, secret_vars[i], nl))
            continue;
        const char *v = getenv(secret_vars[i]);
        if (v != NULL && strlen(v) >= 4 && has_rare_char(v))
            FZ_CHECK(strstr(colon, v) == NULL, "secret %s shown in '%s'",
                     secret_vars[i], err);
        FZ_CHECK(strstr(colon, "got '") == NULL, "secret %s shown in '%s'",
                 secret_vars[i], err);
    }
}

static void run_table(void)
{
    char err[512] = "";
    of_status st = of_config_load(table, NTABLE, err, sizeof err);
    if (st == OF_OK) {
        FZ_CHECK(v_port >= 1 && v_port <= 65535, "port %lld", v_port);
        FZ_CHECK(v_dur >= 0, "duration %lld", (long long)v_dur);
        FZ_CHECK(getenv("FZ_DUR_B") == NULL || *getenv("FZ_DUR_B") == '\0' ||
                     (v_dur_b >= 100 && v_dur_b <= 60000),
                 "bounded duration %lld", (long long)v_dur_b);
        FZ_CHECK(v_secret_int >= 1 && v_secret_int <= 10, "secret int %lld",
                 v_secret_int);
        FZ_CHECK(v_level >= 0 && v_level <= 3, "level %d", v_level);
        FZ_CHECK(v_req != NULL && v_req[0] != '\0', "required string empty");
        FZ_CHECK(v_list_req.n > 0, "required list empty");
        FZ_CHECK(list_ok(&v_list) && list_ok(&v_list_req), "list item");
        FZ_CHECK(url_ok(v_url) && url_ok(v_secret), "url '%s'",
                 v_url ? v_url : "(null)");
        FZ_CHECK(v_str != NULL, "string with a default is NULL");
    } else {
        FZ_CHECK(st == OF_EFATAL, "status %d", st);
        check_err(err);
        FZ_CHECK(strncmp(err, "FZ_", 3) == 0, "error '%s'", err);
    }
    of_config_free(table, NTABLE);
    FZ_CHECK(v_str == NULL && v_list.items == NULL && v_list_req.n == 0,
             "of_config_free left values");
}

static void run_services(void)
{
    char err[512] = "";
    inv_config ic;
    memset(&ic, 0, sizeof ic);
    if (inv_config_load(&ic, err, sizeof err) == OF_OK) {
        FZ_CHECK(ic.pg_dsn && *ic.pg_dsn, "inventory: empty OF_PG_DSN");
        FZ_CHECK(ic.common.http_port >= 1 && ic.common.http_port <= 65535 &&
                     ic.batch_max >= 1 && ic.batch_max <= 5000 &&
                     ic.batch_ms >= 0 && ic.batch_ms <= 10000 &&
                     ic.http_threads >= 1 && ic.http_threads <= 64 &&
                     ic.delivery_timeout_ms >= 1000,
                 "inventory: value out of bounds");
    } else {
        check_err(err);
    }
    inv_config_free(&ic);

    err[0] = '\0';
    ntf_config nc;
    memset(&nc, 0, sizeof nc);
    if (ntf_config_load(&nc, err, sizeof err) == OF_OK) {
        FZ_CHECK(nc.ntiers >= 1 && nc.ntiers <= NTF_MAX_TIERS, "%zu tiers",
                 nc.ntiers);
        for (size_t i = 0; i < nc.ntiers; i++)
            FZ_CHECK(nc.delays_ms[i] > 0, "delay %lld",
                     (long long)nc.delays_ms[i]);
        FZ_CHECK(nc.cb_ratio > 0 && nc.cb_ratio <= 1, "ratio %g", nc.cb_ratio);
        FZ_CHECK(nc.cb_min_requests <= nc.cb_window, "min > window");
        FZ_CHECK(nc.secret && *nc.secret, "empty OF_NOTIFY_SECRET");
        FZ_CHECK(url_ok(nc.email_url) && url_ok(nc.sms_url) &&
                     url_ok(nc.webhook_url),
                 "notify: bad URL accepted");
    } else {
        check_err(err);
    }
    /* A failed ntf_config_load may leave values behind: free in any case
     * (the free is idempotent). */
    ntf_config_free(&nc);
}

static void run_rdkafka(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == NULL)
        abort();
    char err[512] = "";
    if (of_config_apply_rdkafka_env(conf, err, sizeof err) != OF_OK) {
        FZ_CHECK(strncmp(err, "OF_RDKAFKA_", 11) == 0, "error '%s'", err);
        /* Secret-looking properties must not have their value echoed. */
        const char *colon = strchr(err, ':');
        char var[256];
        size_t nl = colon ? (size_t)(colon - err) : 0;
        if (nl > 0 && nl < sizeof var) {
            memcpy(var, err, nl);
            var[nl] = '\0';
            const char *v = getenv(var);
            bool secretish = strstr(var, "PASSWORD") || strstr(var, "SECRET") ||
                             strstr(var, "KEY") || strstr(var, "TOKEN") ||
                             strstr(var, "JAAS") || strstr(var, "OAUTHBEARER");
            /* librdkafka may quote the property name, which comes from the
             * variable name: blank it out before looking for the value. */
            char prop[256], msg[512];
            size_t k = 0;
            for (const char *q = var + 11; *q && k + 1 < sizeof prop; q++)
                prop[k++] = *q == '_' ? '.' : (char)tolower((unsigned char)*q);
            prop[k] = '\0';
            snprintf(msg, sizeof msg, "%s", colon);
            /* From after each match: a property of blanks ("OF_RDKAFKA_ ")
             * would otherwise be found again for ever. */
            for (char *m = msg; k > 0 && (m = strstr(m, prop)) != NULL; m += k)
                memset(m, ' ', k);
            if (secretish && v != NULL && strlen(v) >= 6)
                FZ_CHECK(strstr(msg, v) == NULL, "secret value in '%s'", err);
        }
    }
    rd_kafka_conf_destroy(conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lines c = {data, size};
    const uint8_t *line;
    size_t len;
    bool any_rdkafka = false;
    while (fz_next_line(&c, &line, &len) && nset < MAX_SET) {
        char *kv = fz_cstr(line, len);
        char *eq = strchr(kv, '=');
        if (eq != NULL) {
            *eq = '\0';
            const char *name = kv, *val = eq + 1;
            check_durations(val);
            bool ours = strncmp(name, "OF_", 3) == 0 ||
                        strncmp(name, "FZ_", 3) == 0;
            bool plugin = strcasestr(name, "PLUGIN") != NULL;
            if (ours && !plugin && setenv(name, val, 1) == 0) {
                set_names[nset++] = strdup(name);
                any_rdkafka |= strncmp(name, "OF_RDKAFKA_", 11) == 0;
            }
        } else {
            check_durations(kv);
        }
        free(kv);
    }

    run_table();
    run_services();
    if (any_rdkafka)
        run_rdkafka();
    env_clear_ours();
    return 0;
}
