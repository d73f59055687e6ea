/*
 * of_config.c - typed configuration from the environment (of_config.h).
 *
 * Resolution per entry: an unset variable takes the default. A variable set
 * to the empty string means "empty" for STR, URL and LIST (so a non-empty
 * default can be switched off), and "use the default" for the scalar types
 * (INT, BOOL, DURATION, LEVEL). OF_CFG_REQUIRED rejects an empty result.
 * For INT and DURATION, min == max == 0 means unbounded.
 */
#include "of_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "of_log.h"

of_http_limits of_config_http;

extern char **environ;

/* Copies s[0..n) without surrounding blanks into a NUL-terminated out.
 * Returns false (out then holds a truncated copy) when it does not fit:
 * callers reject such values rather than parse a prefix of them. */
static bool trim_copy(const char *s, size_t n, char *out, size_t outlen)
{
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    bool fits = n < outlen;
    if (!fits)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return fits;
}

int of_config_parse_duration(const char *s, int64_t *ms)
{
    char buf[64];
    if (s == NULL)
        return -1;
    if (!trim_copy(s, strlen(s), buf, sizeof buf))
        return -1; /* no real duration is 64 characters long */
    const char *p = buf;
    if (!isdigit((unsigned char)*p))
        return -1;
    int64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    int64_t mult;
    if (*p == '\0' || strcasecmp(p, "ms") == 0)
        mult = 1;
    else if (strcasecmp(p, "s") == 0)
        mult = 1000;
    else if (strcasecmp(p, "m") == 0)
        mult = 60 * 1000;
    else if (strcasecmp(p, "h") == 0)
        mult = 3600 * 1000;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    if (ms)
        *ms = v * mult;
    return 0;
}

of_status of_config_parse_durations(const char *s, int64_t *out, size_t max,
                                    size_t *n, char *err, size_t errlen)
{
    size_t count = 0;
    for (const char *p = s ? s : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        bool fits = trim_copy(p, len, item, sizeof item);
        p += len + (comma != NULL);
        if (item[0] == '\0')
            continue; /* "5s,,30s" and a trailing comma are tolerated */
        int64_t ms;
        if (!fits || of_config_parse_duration(item, &ms) != 0 || ms <= 0) {
            of_seterr(err, errlen,
                      "'%s' is not a duration > 0 (use 250ms, 5s, 2m, 1h "
                      "or bare milliseconds)", item);
            return OF_EFATAL;
        }
        if (count == max) {
            of_seterr(err, errlen, "too many durations (at most %zu)", max);
            return OF_EFATAL;
        }
        out[count++] = ms;
    }
    if (n)
        *n = count;
    return OF_OK;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || isspace((unsigned char)*s))
        return -1;
    *out = v;
    return 0;
}

static bool valid_url(const char *s)
{
    const char *rest = NULL;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    if (rest == NULL || *rest == '\0' || *rest == '/')
        return false;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return false;
    return true;
}

/* Splits a comma list into strdup'ed, trimmed, non-empty items. */
static OF_MUST_CHECK of_status parse_list(const char *s, of_cfg_list *out)
{
    out->items = NULL;
    out->n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    out->items = calloc(cap, sizeof *out->items);
    if (out->items == NULL)
        return OF_EFATAL;
    for (const char *p = s; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *a = p, *b = p + len;
        p += len + (comma != NULL);
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b)
            continue;
        if ((out->items[out->n] = strndup(a, (size_t)(b - a))) == NULL)
            return OF_EFATAL;
        out->n++;
    }
    return OF_OK;
}

/* The "got '...'" tail of a message; secrets are never shown. */
static const char *shown(const of_cfg_entry *e, const char *v, char *buf,
                         size_t len)
{
    if (e->flags & OF_CFG_SECRET)
        snprintf(buf, len, "(value not shown: secret)");
    else
        snprintf(buf, len, "got '%.200s'", v);
    return buf;
}

/* Parses one entry whose text value is v (never NULL). */
static OF_MUST_CHECK of_status load_one(const of_cfg_entry *e, const char *v, char *err,
                          size_t errlen)
{
    char tail[256];
    switch (e->type) {
    case OF_CFG_DSN:
        if (*v) {
            /* libpq's own parse error quotes the text around the problem,
             * which may be a password: it is not repeated. */
            char *perr = NULL;
            PQconninfoOption *opts = PQconninfoParse(v, &perr);
            PQfreemem(perr);
            if (opts == NULL) {
                of_seterr(err, errlen,
                          "%s: not a valid libpq connection string "
                          "(key=value pairs, values with spaces in single "
                          "quotes, or a postgresql:// URI)",
                          e->name);
                return OF_EFATAL;
            }
            PQconninfoFree(opts);
        }
        /* fall through */
    case OF_CFG_STR:
    case OF_CFG_URL:
        if (e->type == OF_CFG_URL && *v && !valid_url(v)) {
            of_seterr(err, errlen, "%s: must be an http:// or https:// URL, %s",
                      e->name, shown(e, v, tail, sizeof tail));
            return OF_EFATAL;
        }
        if ((*(char **)e->target = strdup(v)) == NULL)
            goto oom;
        return OF_OK;
    case OF_CFG_INT: {
        long long x, lo = e->min, hi = e->max;
        if (lo == 0 && hi == 0)
            lo = LLONG_MIN, hi = LLONG_MAX;
        if (parse_ll(v, &x) != 0 || x < lo || x > hi) {
            of_seterr(err, errlen, "%s: must be an integer in %lld..%lld, %s",
                      e->name, lo, hi, shown(e, v, tail, sizeof tail));
            return OF_EFATAL;
        }
        *(long long *)e->target = x;
        return OF_OK;
    }
    case OF_CFG_BOOL:
        if (parse_bool(v, (bool *)e->target) != 0) {
            of_seterr(err, errlen,
                      "%s: must be a boolean (1/0, true/false, yes/no, "
                      "on/off), %s", e->name, shown(e, v, tail, sizeof tail));
            return OF_EFATAL;
        }
        return OF_OK;
    case OF_CFG_DURATION: {
        int64_t ms;
        long long lo = e->min, hi = e->max;
        if (lo == 0 && hi == 0)
            lo = 0, hi = LLONG_MAX;
        if (of_config_parse_duration(v, &ms) != 0 || ms < lo || ms > hi) {
            of_seterr(err, errlen,
                      "%s: must be a duration (250ms, 5s, 2m, 1h or bare "
                      "milliseconds) in %lld..%lld ms, %s",
                      e->name, lo, hi, shown(e, v, tail, sizeof tail));
            return OF_EFATAL;
        }
        *(int64_t *)e->target = ms;
        return OF_OK;
    }
    case OF_CFG_LIST:
        if (parse_list(v, (of_cfg_list *)e->target) != OF_OK)
            goto oom;
        return OF_OK;
    case OF_CFG_LEVEL: {
        of_log_level lvl;
        if (of_log_level_parse(v, &lvl) != 0) {
            of_seterr(err, errlen, "%s: must be one of debug|info|warn|error, %s",
                      e->name, shown(e, v, tail, sizeof tail));
            return OF_EFATAL;
        }
        *(int *)e->target = (int)lvl;
        return OF_OK;
    }
    }
    of_seterr(err, errlen, "%s: unknown setting type %d", e->name, (int)e->type);
    return OF_EFATAL;
oom:
    of_seterr(err, errlen, "%s: out of memory", e->name);
    return OF_EFATAL;
}

static bool is_text_type(of_cfg_type t)
{
    return t == OF_CFG_STR || t == OF_CFG_URL || t == OF_CFG_DSN ||
           t == OF_CFG_LIST;
}

/* Frees one list target (also a half-built one). */
static void free_list(of_cfg_list *l)
{
    for (size_t k = 0; k < l->n; k++)
        free(l->items[k]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* On failure, whatever the earlier entries allocated is freed, so a
 * failed load leaves nothing to clean up. */
of_status of_config_load(const of_cfg_entry *table, size_t n, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const of_cfg_entry *e = &table[i];
        const char *v = getenv(e->name);
        if (v == NULL || (*v == '\0' && !is_text_type(e->type)))
            v = e->def;
        of_status st = OF_OK;
        if ((v == NULL || *v == '\0') && (e->flags & OF_CFG_REQUIRED)) {
            of_seterr(err, errlen, "%s: is required but unset or empty",
                      e->name);
            st = OF_EFATAL;
        } else if (v == NULL && e->type == OF_CFG_LIST) {
            *(of_cfg_list *)e->target = (of_cfg_list){NULL, 0};
        } else if (v == NULL && is_text_type(e->type)) {
            *(char **)e->target = NULL; /* unset, no default */
        } else if (v == NULL || (*v == '\0' && !is_text_type(e->type))) {
            /* a scalar with neither value nor default keeps its value */
        } else {
            st = load_one(e, v, err, errlen);
            if (e->type == OF_CFG_LIST) {
                of_cfg_list *l = e->target;
                if (st == OF_OK && l->n == 0 && (e->flags & OF_CFG_REQUIRED)) {
                    of_seterr(err, errlen, "%s: is required but has no items",
                              e->name);
                    st = OF_EFATAL;
                }
                if (st != OF_OK)
                    free_list(l);
            }
        }
        if (st != OF_OK) {
            of_config_free(table, i);
            return st;
        }
    }
    return OF_OK;
}

void of_config_free(const of_cfg_entry *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const of_cfg_entry *e = &table[i];
        if (e->target == NULL)
            continue;
        switch (e->type) {
        case OF_CFG_STR:
        case OF_CFG_URL:
        case OF_CFG_DSN:
            free(*(char **)e->target);
            *(char **)e->target = NULL;
            break;
        case OF_CFG_LIST:
            free_list(e->target);
            break;
        case OF_CFG_INT:
            *(long long *)e->target = 0;
            break;
        case OF_CFG_BOOL:
            *(bool *)e->target = false;
            break;
        case OF_CFG_DURATION:
            *(int64_t *)e->target = 0;
            break;
        case OF_CFG_LEVEL:
            *(int *)e->target = 0;
            break;
        }
    }
}

void of_config_usage(const of_cfg_entry *table, size_t n, void *f)
{
    FILE *out = f ? f : stdout;
    fprintf(out, "Environment variables:\n");
    for (size_t i = 0; i < n; i++) {
        const of_cfg_entry *e = &table[i];
        fprintf(out, "  %-26s %s", e->name, e->help ? e->help : "");
        if (e->flags & OF_CFG_REQUIRED)
            fprintf(out, " (required)");
        if (e->flags & OF_CFG_SECRET)
            fprintf(out, " (secret)");
        else if (e->def && *e->def)
            fprintf(out, " [default: %s]", e->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s any librdkafka property, e.g. OF_RDKAFKA_LINGER_MS=5 "
                 "sets linger.ms\n", "OF_RDKAFKA_<PROPERTY>");
}

/* librdkafka sometimes quotes the offending value; for properties that
 * look secret that value is cut out of the message. */
static bool looks_secret(const char *prop)
{
    return strstr(prop, "password") || strstr(prop, "secret") ||
           strstr(prop, "key") || strstr(prop, "token") ||
           strstr(prop, "jaas") || strstr(prop, "oauthbearer");
}

of_status of_config_apply_rdkafka_env(void *conf, char *err, size_t errlen)
{
    static const char prefix[] = "OF_RDKAFKA_";
    const size_t plen = sizeof prefix - 1;
    for (char **ep = environ; ep && *ep; ep++) {
        const char *kv = *ep, *eq = strchr(kv, '=');
        if (strncmp(kv, prefix, plen) != 0 || eq == NULL)
            continue;
        size_t nlen = (size_t)(eq - kv);
        char var[256], prop[256], msg[512];
        if (nlen >= sizeof var || nlen == plen) {
            of_seterr(err, errlen, "%.*s: bad librdkafka property name",
                      (int)(nlen > 200 ? 200 : nlen), kv);
            return OF_EFATAL;
        }
        memcpy(var, kv, nlen);
        var[nlen] = '\0';
        size_t k = 0;
        for (const char *p = var + plen; *p; p++)
            prop[k++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        prop[k] = '\0';
        msg[0] = '\0';
        if (rd_kafka_conf_set(conf, prop, eq + 1, msg, sizeof msg) !=
            RD_KAFKA_CONF_OK) {
            if (looks_secret(prop) && eq[1] != '\0' && strstr(msg, eq + 1))
                snprintf(msg, sizeof msg, "invalid value for %s", prop);
            of_seterr(err, errlen, "%s: %s", var, msg);
            return OF_EFATAL;
        }
    }
    return OF_OK;
}

char *of_config_name(const char *prefix, const char *base, char *out,
                     size_t outlen)
{
    snprintf(out, outlen, "%s%s", prefix ? prefix : "", base ? base : "");
    return out;
}

of_status of_config_check_rdkafka_env(char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    of_status st = of_config_apply_rdkafka_env(conf, err, errlen);
    rd_kafka_conf_destroy(conf);
    return st;
}
